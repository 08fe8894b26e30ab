//! The plan and what it means to build, decided before anything is touched; then building
//! and recording the results in a build session. `build`, `deploy` and `ci build` share it.

use std::path::Path;

use super::session::{self, SessionDefaults};
use crate::api::Settings;
use crate::build::{self, BuildOptions, BuildReport, BuildTarget, Failure, Outcome};
use crate::changes::Repo;
use crate::ci::context::CiContext;
use crate::ci::repo_facts;
use crate::ci::state::StateDir;
use crate::config::Env;
use crate::error::Error;
use crate::plan::{self, Deployed, Plan, PlanRequest};
use crate::progress::Reporter;

pub struct Prepared {
    pub ci: CiContext,
    pub plan: Plan,
    pub options: BuildOptions,
    pub targets: Vec<Result<BuildTarget, Failure>>,
}

impl Prepared {
    /// Plans in `repo`, against what is `deployed` when given (see `deploy::select`), and
    /// resolves every location to build.
    pub fn new(
        repo: &Repo,
        req: &PlanRequest,
        mut options: BuildOptions,
        deployed: Option<&Deployed>,
        env: Env,
    ) -> Result<Prepared, Error> {
        let ci = CiContext::detect(env);
        let facts = super::select::ci_facts(&ci, req)?;
        let plan = plan::plan_in(repo, req, &facts, env, deployed)?;
        options.source_url = build::source_url(&plan.repository, env);
        let targets = build::resolve_all(&plan, &options);
        Ok(Prepared {
            ci,
            plan,
            options,
            targets,
        })
    }

    /// Builds every target; `None` after Ctrl-C.
    pub async fn build(
        &self,
        reporter: &Reporter,
        env: Env<'_>,
    ) -> Result<Option<BuildReport>, Error> {
        if self.targets.is_empty() {
            reporter.message("nothing to build: no location's build inputs changed");
            return Ok(Some(BuildReport::new(Vec::new())));
        }
        match build::execute(self.targets.clone(), &self.options, reporter, env).await? {
            Outcome::Finished(report) => Ok(Some(report)),
            Outcome::Interrupted => {
                reporter.message(
                    "interrupted: builds and pushes in progress were stopped; no tag was \
                     half-pushed (a registry tag appears only once its image is complete)",
                );
                Ok(None)
            }
        }
    }

    /// Writes the results into the build-session folder (`statedir`, else
    /// `DAGSTER_BUILD_STATEDIR`), when there is one; returns it. New state files record the
    /// organisation and deployment the `settings` name.
    pub fn save_state(
        &self,
        statedir: Option<&Path>,
        settings: &Settings,
        report: &BuildReport,
        reporter: &Reporter,
        env: Env,
    ) -> Result<Option<String>, Error> {
        let Some(dir) = StateDir::choose(statedir, env) else {
            return Ok(None);
        };
        let repo = Repo::discover(&self.plan.repository)?;
        let git = repo_facts::discover(&repo.repo, &self.plan.head.commit, env);
        let defaults = SessionDefaults::from_settings(settings, git);
        let written = session::record_build(&dir, &self.plan, report, &defaults)?;
        if !written.is_empty() {
            reporter.message(&format!(
                "results recorded in {} ({} location file{})",
                dir.path.display(),
                written.len(),
                if written.len() == 1 { "" } else { "s" }
            ));
        }
        Ok(Some(dir.path.display().to_string()))
    }
}
