//! Where each location's paths are in the repository: its build directory, Dockerfile and
//! watched paths, written relative to the yaml's folder (or absolute inside the work tree),
//! with symlinks followed at every component as Docker's CLI follows a symlinked context.
//!
//! Problems are diagnostics at the position of the value that says it, in dagster_cloud.yaml
//! or dagster-deploy.toml: `check` lists them with the file's other problems, `plan` refuses
//! to plan with them.

use std::path::Path;

use crate::changes::{FileSource, Repo, Resolved, Unresolvable, display, paths};
use crate::config::{self, Diagnostic, Location, Workspace};

/// The default Dockerfile name inside the build directory.
pub const DOCKERFILE: &str = "Dockerfile";

const OUTSIDE_HINT: &str = "build directories must be inside the git repository (symlinks are followed): move it in or fix `build.directory`";
const MISSING_HINT: &str = "create the directory or fix `build.directory` (it is relative to the folder of dagster_cloud.yaml)";

/// One location's paths, repo-relative, symlinks followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocationPaths {
    /// The Docker build context.
    pub context_dir: String,
    pub dockerfile: String,
    pub watch: Vec<String>,
    /// The symlinks passed on the way to any of the above: pointing one elsewhere changes
    /// the build, so they are build inputs too.
    pub links: Vec<String>,
}

/// The paths of every location of `ws` as `files` has them (`yaml_dir` is the yaml's folder,
/// repo-relative), in the order of `ws.locations` (`None` where a problem was found), and the
/// problems, redacted and sorted.
pub fn locate(
    repo: &Repo,
    files: &dyn FileSource,
    yaml_dir: &str,
    ws: &Workspace,
) -> (Vec<Option<LocationPaths>>, Vec<Diagnostic>) {
    let mut problems = Vec::new();
    let located = ws
        .locations
        .iter()
        .map(|loc| {
            let mut finder = Finder {
                repo,
                files,
                yaml_dir,
                ws,
                loc,
                links: Vec::new(),
                problems: &mut problems,
            };
            finder.location()
        })
        .collect();
    (located, finish(ws, problems))
}

/// Outside a git repository `check` can only look at the disk: each build directory must be a
/// folder there.
pub fn check_on_disk(ws: &Workspace) -> Vec<Diagnostic> {
    let problems = ws
        .locations
        .iter()
        .filter(|loc| !ws.root.join(&loc.build_directory).is_dir())
        .map(|loc| directory_problem(ws, loc, "does not exist", MISSING_HINT))
        .collect();
    finish(ws, problems)
}

fn finish(ws: &Workspace, problems: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let mut problems: Vec<Diagnostic> = problems
        .into_iter()
        .map(|d| d.redacted(&ws.redactions))
        .collect();
    config::sort_diagnostics(&mut problems);
    problems
}

/// "build directory `x` of location `a` <what>", at the `build.directory` value.
fn directory_problem(ws: &Workspace, loc: &Location, what: &str, hint: &str) -> Diagnostic {
    Diagnostic {
        file: ws.file.clone(),
        line: loc.directory_line,
        column: loc.directory_column,
        field: format!("locations[{}].build.directory", loc.index),
        message: format!(
            "build directory `{}` of location `{}` {what}",
            display(&loc.build_directory),
            loc.name
        ),
        hint: hint.into(),
    }
}

struct Finder<'a> {
    repo: &'a Repo,
    files: &'a dyn FileSource,
    yaml_dir: &'a str,
    ws: &'a Workspace,
    loc: &'a Location,
    links: Vec<String>,
    problems: &'a mut Vec<Diagnostic>,
}

/// Why a path cannot be used.
enum Problem {
    Outside,
    Loop,
}

impl Finder<'_> {
    fn location(&mut self) -> Option<LocationPaths> {
        let before = self.problems.len();
        let settings = self.ws.settings.for_location(&self.loc.name);
        // `context` in dagster-deploy.toml: the Docker context when it is not build.directory.
        let context_dir = match &settings.context {
            Some(context) => self
                .setting("context", "build context", context)
                .filter(|dir| self.context_exists(dir, context)),
            None => self.build_directory(),
        };
        let dockerfile = match (&settings.dockerfile, &context_dir) {
            (Some(path), _) => self.setting("dockerfile", "Dockerfile", path),
            (None, Some(dir)) => {
                let default = paths::join(dir, DOCKERFILE);
                match self.find(&default) {
                    Ok(path) => Some(path),
                    Err(problem) => {
                        let mut d =
                            directory_problem(self.ws, self.loc, "", &problem.hint(OUTSIDE_HINT));
                        d.message = format!(
                            "Dockerfile `{default}` of location `{}` {}",
                            self.loc.name,
                            problem.tail()
                        );
                        self.problems.push(d);
                        None
                    }
                }
            }
            (None, None) => None,
        };
        let watch: Vec<Option<String>> = settings
            .watch
            .iter()
            .map(|w| self.setting("watch", "watched path", w))
            .collect();
        if self.problems.len() > before {
            return None;
        }
        let mut links = std::mem::take(&mut self.links);
        links.sort();
        links.dedup();
        Some(LocationPaths {
            context_dir: context_dir?,
            dockerfile: dockerfile?,
            watch: watch.into_iter().collect::<Option<_>>()?,
            links,
        })
    }

    /// `build.directory` as a repo path, when it is a directory inside the repository.
    fn build_directory(&mut self) -> Option<String> {
        match self.find(&self.loc.build_directory) {
            Ok(dir) if self.files.is_dir(&dir) => Some(dir),
            Ok(_) => {
                let d = directory_problem(self.ws, self.loc, "does not exist", MISSING_HINT);
                self.problems.push(d);
                None
            }
            Err(problem) => {
                let hint = problem.hint(OUTSIDE_HINT);
                let d = directory_problem(self.ws, self.loc, problem.tail(), &hint);
                self.problems.push(d);
                None
            }
        }
    }

    /// Whether the `context` setting's folder exists; a problem at its position otherwise.
    fn context_exists(&mut self, dir: &str, value: &str) -> bool {
        if self.files.is_dir(dir) {
            return true;
        }
        let (field, line, column) = self
            .ws
            .settings
            .origin(&self.loc.name, "context", value)
            .unwrap_or_else(|| (format!("locations.{}.context", self.loc.name), 1, 1));
        self.problems.push(Diagnostic {
            file: self.ws.settings_file(),
            line,
            column,
            field,
            message: format!(
                "build context `{value}` of location `{}` is not a folder",
                self.loc.name
            ),
            hint: "set `context` to the folder to build from, relative to dagster_cloud.yaml's \
                   folder"
                .into(),
        });
        false
    }

    /// A path from dagster-deploy.toml; a problem is reported at its position there.
    fn setting(&mut self, field: &str, what: &str, value: &str) -> Option<String> {
        let problem = match self.find(value) {
            Ok(path) => return Some(path),
            Err(problem) => problem,
        };
        let (field_path, line, column) = self
            .ws
            .settings
            .origin(&self.loc.name, field, value)
            .unwrap_or_else(|| (format!("locations.{}.{field}", self.loc.name), 1, 1));
        self.problems.push(Diagnostic {
            file: self.ws.settings_file(),
            line,
            column,
            field: field_path,
            message: format!(
                "{what} `{value}` of location `{}` {}",
                self.loc.name,
                problem.tail()
            ),
            hint: problem.hint(&format!(
                "paths in dagster-deploy.toml must be inside the git repository (symlinks are followed): fix `{field}`"
            )),
        });
        None
    }

    /// `path` (relative to the yaml's folder, or absolute) as a repo-relative path with its
    /// symlinks followed; the links passed are remembered.
    fn find(&mut self, path: &str) -> Result<String, Problem> {
        let path = path.replace('\\', "/");
        let joined = if Path::new(&path).is_absolute() {
            self.repo
                .relative_path(Path::new(&path))
                .map_err(|_| Problem::Outside)?
        } else {
            paths::join(self.yaml_dir, &path)
        };
        match self.files.resolve(&joined) {
            Ok(Resolved { path, links }) => {
                self.links.extend(links);
                Ok(path)
            }
            Err(Unresolvable::Outside) => Err(Problem::Outside),
            Err(Unresolvable::Loop) => Err(Problem::Loop),
        }
    }
}

impl Problem {
    /// How the message ends.
    fn tail(&self) -> &'static str {
        match self {
            Problem::Outside => "is outside the repository",
            Problem::Loop => "has symlinks that lead in a circle",
        }
    }

    fn hint(&self, outside: &str) -> String {
        match self {
            Problem::Outside => outside.into(),
            Problem::Loop => "fix the symlinks on the way".into(),
        }
    }
}
