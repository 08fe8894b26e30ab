//! The agent owns code-server ports: gRPC servers set SO_REUSEPORT, so a second server on a
//! taken port starts fine and both serve (docs/research/dagster-code-servers.md §8.1). A port is
//! handed out only when no code server of ours holds it and nothing else listens on it.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};
use std::ops::RangeInclusive;

/// Default `--code-server-ports`: away from 3000 (`serve`), 4000 (Dagster's own default),
/// 5000 (registries) and the webserver's 3000/8080.
pub const DEFAULT_PORTS: RangeInclusive<u16> = 44000..=44999;

#[derive(Debug)]
pub(crate) struct Ports {
    range: RangeInclusive<u16>,
    taken: BTreeSet<u16>,
    next: u16,
}

impl Ports {
    pub(crate) fn new(range: RangeInclusive<u16>) -> Self {
        let next = *range.start();
        Ports {
            range,
            taken: BTreeSet::new(),
            next,
        }
    }

    /// A free port, or `None` when every port of the range is in use.
    pub(crate) fn allocate(&mut self) -> Option<u16> {
        let (start, end) = (*self.range.start(), *self.range.end());
        let len = usize::from(end - start) + 1;
        for _ in 0..len {
            let port = self.next;
            self.next = if port >= end { start } else { port + 1 };
            if !self.taken.contains(&port) && nothing_listens(port) {
                self.taken.insert(port);
                return Some(port);
            }
        }
        None
    }

    /// A port an adopted code server already holds.
    pub(crate) fn claim(&mut self, port: u16) {
        self.taken.insert(port);
    }

    pub(crate) fn release(&mut self, port: u16) {
        self.taken.remove(&port);
    }
}

/// Binding the wildcard address fails while anything listens on the port, on any address.
fn nothing_listens(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_something_listens_on_is_skipped() {
        let busy = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = busy.local_addr().expect("addr").port();
        let mut ports = Ports::new(port..=port);
        assert_eq!(ports.allocate(), None);
        drop(busy);
        assert_eq!(ports.allocate(), Some(port));
        // Ours now, whether or not it listens yet.
        assert_eq!(ports.allocate(), None);
        ports.release(port);
        assert_eq!(ports.allocate(), Some(port));
    }
}
