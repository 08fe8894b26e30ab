//! The target the artefacts are built for: CPython X.Y on Linux x86_64 with glibc 2.28 or newer
//! (what Dagster+ Serverless runs). Written as a pex "complete platform" (marker environment +
//! compatible wheel tags, most specific first, in the order `packaging.tags` gives them), so a
//! build on any machine selects the same wheels whatever Python the machine has.

use serde_json::{Value, json};

/// Python versions a Python-executable deploy can target.
pub const SUPPORTED: [&str; 5] = ["3.9", "3.10", "3.11", "3.12", "3.13"];
pub const DEFAULT_PYTHON_VERSION: &str = "3.11";
/// The newest glibc the wheels may need; also the `uv --python-platform` of the resolve, so
/// resolution and selection agree.
pub const GLIBC_MINOR: u32 = 28;
/// For `uv pip compile --python-platform`.
pub const UV_PLATFORM: &str = "x86_64-manylinux_2_28";
/// Names the target in dependency keys: a change here must give new keys.
pub const PLATFORM_ID: &str = "linux_x86_64-manylinux_2_28-cpython";

/// `(major, minor)` of a supported `X.Y`, or a message listing the supported ones.
pub fn parse_version(v: &str) -> Result<(u32, u32), String> {
    let err = || {
        format!(
            "unsupported --python-version {v:?}: use one of {}",
            SUPPORTED.join(", ")
        )
    };
    if !SUPPORTED.contains(&v) {
        return Err(err());
    }
    let (a, b) = v.split_once('.').ok_or_else(err)?;
    Ok((a.parse().map_err(|_| err())?, b.parse().map_err(|_| err())?))
}

/// A patch release for markers such as `python_full_version >= "3.11.4"`: a recent one.
fn full_version(minor: u32) -> String {
    let patch = match minor {
        9 => 23,
        10 => 18,
        11 => 13,
        12 => 11,
        _ => 5,
    };
    format!("3.{minor}.{patch}")
}

/// Platform tags, most specific first: manylinux_2_N down to 2_5 (with the legacy aliases
/// after the version they equal), then plain linux.
fn platforms() -> Vec<String> {
    let mut out = Vec::new();
    for glibc in (5..=GLIBC_MINOR).rev() {
        out.push(format!("manylinux_2_{glibc}_x86_64"));
        match glibc {
            17 => out.push("manylinux2014_x86_64".into()),
            12 => out.push("manylinux2010_x86_64".into()),
            5 => out.push("manylinux1_x86_64".into()),
            _ => {}
        }
    }
    out.push("linux_x86_64".into());
    out
}

/// Compatible tags of CPython 3.`minor` on the target, in priority order.
pub fn tags(minor: u32) -> Vec<String> {
    let plats = platforms();
    let cp = format!("cp3{minor}");
    let mut tags = Vec::new();
    for abi in [cp.as_str(), "abi3", "none"] {
        for p in &plats {
            tags.push(format!("{cp}-{abi}-{p}"));
        }
    }
    for older in (2..minor).rev() {
        for p in &plats {
            tags.push(format!("cp3{older}-abi3-{p}"));
        }
    }
    let py: Vec<String> = std::iter::once(format!("py3{minor}"))
        .chain(std::iter::once("py3".to_string()))
        .chain((0..minor).rev().map(|m| format!("py3{m}")))
        .collect();
    for v in &py {
        for p in &plats {
            tags.push(format!("{v}-none-{p}"));
        }
    }
    tags.push(format!("{cp}-none-any"));
    for v in &py {
        tags.push(format!("{v}-none-any"));
    }
    tags
}

/// The pex `--complete-platform` document for Python 3.`minor`.
pub fn complete_platform(minor: u32) -> Value {
    let full = full_version(minor);
    json!({
        "marker_environment": {
            "implementation_name": "cpython",
            "implementation_version": full,
            "os_name": "posix",
            "platform_machine": "x86_64",
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": "Linux",
            "platform_version": "",
            "python_full_version": full,
            "python_version": format!("3.{minor}"),
            "sys_platform": "linux",
        },
        "compatible_tags": tags(minor),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("3.11"), Ok((3, 11)));
        let e = parse_version("3.8").unwrap_err();
        assert!(e.contains("3.9, 3.10, 3.11, 3.12, 3.13"), "{e}");
        assert!(parse_version("3").is_err());
    }

    #[test]
    fn tags_go_from_most_to_least_specific() {
        let t = tags(11);
        assert_eq!(t[0], "cp311-cp311-manylinux_2_28_x86_64");
        assert!(t.contains(&"cp311-cp311-manylinux2014_x86_64".to_string()));
        assert!(t.contains(&"cp37-abi3-manylinux_2_17_x86_64".to_string()));
        assert_eq!(t.last().unwrap(), "py30-none-any");
        let pos = |s: &str| t.iter().position(|x| x == s).unwrap();
        assert!(pos("cp311-abi3-linux_x86_64") < pos("cp310-abi3-manylinux_2_28_x86_64"));
        assert!(pos("py3-none-manylinux1_x86_64") < pos("cp311-none-any"));
        assert!(!t.iter().any(|x| x.contains("manylinux_2_29")));
    }
}
