//! What the `ci` session tests stand on: a two-location project whose last commit changes
//! only `a`, the binary run with a clean environment, and what a session leaves behind.

use std::path::Path;
use std::process::Output;

use super::Monorepo;
use super::server::run_clean;

pub const YAML: &str = "\
locations:
  - location_name: a
    code_source:
      module_name: a.defs
    working_directory: a
    build:
      directory: a
      registry: registry.example.com/a
  - location_name: b
    code_source:
      package_name: b
    build:
      directory: b
      registry: registry.example.com/b
    container_context:
      k8s:
        env_vars:
          - X=1
";

const OURS: &str = env!("CARGO_BIN_EXE_dagster-deploy");

/// A repository whose last commit changes only location `a`.
pub fn project() -> Monorepo {
    let m = Monorepo::new();
    m.write("dagster_cloud.yaml", YAML);
    m.write("a/defs.py", "x = 1\n");
    m.write("b/setup.py", "\n");
    m.commit("both");
    m.write("a/defs.py", "x = 2\n");
    m.commit("change a");
    m
}

/// `dagster-deploy ARGS` with the clean environment the reference CLI runs with.
pub async fn ours(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    run_clean(Path::new(OURS), home, args, env).await
}

/// What a process printed, stdout then stderr.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every file of the state folder, concatenated.
pub fn state_text(statedir: &Path) -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(statedir).unwrap() {
        all.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    all
}
