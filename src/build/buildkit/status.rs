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

/// Bytes of one step's unfinished output line kept before it is shown as it is.
const MAX_PARTIAL: usize = 64 * 1024;

/// Shows what `vertex` printed without a final newline (`printf 'bad config'; exit 1`).
fn flush(
    partial: &mut HashMap<String, String>,
    vertex: &str,
    number: usize,
    out: &mut dyn FnMut(String),
) {
    if let Some(rest) = partial.remove(vertex)
        && !rest.trim().is_empty()
    {
        out(format!("#{number} {}", rest.trim_end()));
    }
}

impl StatusLog {
    pub fn counts(&self) -> StepCounts {
        self.counts
    }

    /// At the end of the stream: the unfinished lines of every step.
    pub fn finish(&mut self, out: &mut dyn FnMut(String)) {
        let mut left: Vec<(usize, String)> = self
            .partial
            .keys()
            .map(|v| (self.vertices.get(v).map_or(0, |s| s.number), v.clone()))
            .collect();
        left.sort();
        for (number, vertex) in left {
            flush(&mut self.partial, &vertex, number, out);
        }
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
                flush(&mut self.partial, &vertex.digest, number, out);
                out(format!("#{number} ERROR: {}", vertex.error));
            } else if vertex.completed.is_some() {
                state.finished = true;
                flush(&mut self.partial, &vertex.digest, number, out);
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
            // Output that never ends its line is shown in pieces, not held without bound.
            if partial.len() > MAX_PARTIAL {
                flush(&mut self.partial, &log.vertex, number, out);
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

    #[test]
    fn output_without_a_final_newline_is_shown_when_its_step_ends_or_the_stream_does() {
        let mut log = StatusLog::default();
        let mut lines = Vec::new();
        let mut out = |l: String| lines.push(l);
        let step = |digest: &str, name: &str| V {
            digest: digest.into(),
            name: name.into(),
            started: at(1),
            ..V::default()
        };
        let said = |vertex: &str, msg: &[u8]| VertexLog {
            vertex: vertex.into(),
            msg: msg.to_vec(),
            ..Default::default()
        };
        log.apply(
            &StatusResponse {
                vertexes: vec![step("a", "[1/2] RUN check"), step("b", "[2/2] RUN other")],
                logs: vec![said("a", b"bad config"), said("b", b"still going")],
                ..Default::default()
            },
            &mut out,
        );
        log.apply(
            &StatusResponse {
                vertexes: vec![V {
                    error: "process did not complete successfully: exit code: 1".into(),
                    ..step("a", "[1/2] RUN check")
                }],
                ..Default::default()
            },
            &mut out,
        );
        log.finish(&mut out);
        assert_eq!(
            lines,
            [
                "#1 [1/2] RUN check",
                "#2 [2/2] RUN other",
                "#1 bad config",
                "#1 ERROR: process did not complete successfully: exit code: 1",
                "#2 still going",
            ]
        );
    }
}
