//! BuildKit's progress (the `moby.buildkit.trace` items of a build stream) as plain lines, in
//! the style of `docker buildx build --progress=plain`: `#5 [2/4] RUN ...`, its output lines,
//! `#5 CACHED` or `#5 DONE 1.2s` or `#5 ERROR: ...`. It also counts the Dockerfile's steps and
//! how many came from the cache.

use std::collections::HashMap;

use bollard::moby::buildkit::v1::StatusResponse;

/// Steps of one build.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepCounts {
    /// Dockerfile steps run or reused (`FROM` and BuildKit's internal steps not counted).
    pub steps: u32,
    /// Of those, the ones that came from the cache.
    pub cached: u32,
}

#[derive(Default)]
struct Vertex {
    number: usize,
    announced: bool,
    finished: bool,
}

/// Turns status items into lines, remembering each vertex's number.
#[derive(Default)]
pub(crate) struct StatusLog {
    vertices: HashMap<String, Vertex>,
    counts: StepCounts,
    /// Partial output of a vertex (text without its newline yet).
    partial: HashMap<String, String>,
}

/// A Dockerfile instruction step (`[2/4] RUN ...`, `[stage 1/3] COPY ...`), not `FROM`.
fn is_counted_step(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('[') else {
        return false;
    };
    let Some((label, instruction)) = rest.split_once("] ") else {
        return false;
    };
    label != "internal" && !instruction.starts_with("FROM ")
}

/// How long a vertex took, in seconds.
fn took(vertex: &bollard::moby::buildkit::v1::Vertex) -> f64 {
    match (&vertex.started, &vertex.completed) {
        (Some(s), Some(c)) => {
            let nanos =
                (c.seconds - s.seconds) as f64 * 1e9 + f64::from(c.nanos) - f64::from(s.nanos);
            (nanos / 1e9).max(0.0)
        }
        _ => 0.0,
    }
}

impl StatusLog {
    pub fn counts(&self) -> StepCounts {
        self.counts
    }

    /// Lines for one status item, in order.
    pub fn apply(&mut self, status: &StatusResponse, out: &mut dyn FnMut(String)) {
        for vertex in &status.vertexes {
            let next = self.vertices.len() + 1;
            let state = self
                .vertices
                .entry(vertex.digest.clone())
                .or_insert_with(|| Vertex {
                    number: next,
                    ..Vertex::default()
                });
            let number = state.number;
            if !state.announced && (vertex.started.is_some() || vertex.cached) {
                state.announced = true;
                out(format!("#{number} {}", vertex.name));
            }
            if state.finished {
                continue;
            }
            if vertex.cached {
                state.finished = true;
                out(format!("#{number} CACHED"));
            } else if !vertex.error.is_empty() {
                state.finished = true;
                out(format!("#{number} ERROR: {}", vertex.error));
            } else if vertex.completed.is_some() {
                state.finished = true;
                out(format!("#{number} DONE {:.1}s", took(vertex)));
            } else {
                continue;
            }
            if is_counted_step(&vertex.name) {
                self.counts.steps += 1;
                if vertex.cached {
                    self.counts.cached += 1;
                }
            }
        }
        for log in &status.logs {
            let number = self.vertices.get(&log.vertex).map_or(0, |v| v.number);
            let partial = self.partial.entry(log.vertex.clone()).or_default();
            partial.push_str(&String::from_utf8_lossy(&log.msg));
            while let Some(end) = partial.find('\n') {
                let line: String = partial.drain(..=end).collect();
                let line = line.trim_end();
                if !line.trim().is_empty() {
                    out(format!("#{number} {line}"));
                }
            }
        }
        for warning in &status.warnings {
            let number = self.vertices.get(&warning.vertex).map_or(0, |v| v.number);
            out(format!(
                "#{number} WARNING: {}",
                String::from_utf8_lossy(&warning.short)
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::moby::buildkit::v1::{Vertex as V, VertexLog};

    fn at(seconds: i64) -> Option<bollard_buildkit_proto::google::protobuf::Timestamp> {
        Some(bollard_buildkit_proto::google::protobuf::Timestamp { seconds, nanos: 0 })
    }

    #[test]
    fn lines_and_counts_follow_buildx_plain_output() {
        let mut log = StatusLog::default();
        let mut lines = Vec::new();
        let mut out = |l: String| lines.push(l);
        let vertex = |digest: &str, name: &str| V {
            digest: digest.into(),
            name: name.into(),
            ..V::default()
        };
        let from = V {
            started: at(1),
            completed: at(1),
            ..vertex("a", "[1/3] FROM docker.io/library/python:3.11-slim")
        };
        let cached = V {
            cached: true,
            started: at(1),
            ..vertex("b", "[2/3] RUN uv sync")
        };
        let running = V {
            started: at(2),
            ..vertex("c", "[3/3] COPY . .")
        };
        log.apply(
            &StatusResponse {
                vertexes: vec![from, cached, running.clone()],
                ..Default::default()
            },
            &mut out,
        );
        log.apply(
            &StatusResponse {
                vertexes: vec![V {
                    completed: at(4),
                    ..running
                }],
                logs: vec![VertexLog {
                    vertex: "c".into(),
                    msg: b"copied\npart".to_vec(),
                    ..Default::default()
                }],
                ..Default::default()
            },
            &mut out,
        );
        assert_eq!(
            lines,
            [
                "#1 [1/3] FROM docker.io/library/python:3.11-slim",
                "#1 DONE 0.0s",
                "#2 [2/3] RUN uv sync",
                "#2 CACHED",
                "#3 [3/3] COPY . .",
                "#3 DONE 2.0s",
                "#3 copied",
            ]
        );
        assert_eq!(
            log.counts(),
            StepCounts {
                steps: 2,
                cached: 1
            }
        );
    }
}
