//! Who may do what in a project. Outsiders get 404 (the project's existence is not revealed);
//! members without the needed role get 403.

use uuid::Uuid;

use super::store::{self, ProjectRow, RepoRow};
use crate::{db::Db, error::ApiError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProjectRole {
    Viewer,
    Maintainer,
    Owner,
}

impl ProjectRole {
    pub fn parse(s: &str) -> Option<ProjectRole> {
        match s {
            "owner" => Some(ProjectRole::Owner),
            "maintainer" => Some(ProjectRole::Maintainer),
            "viewer" => Some(ProjectRole::Viewer),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectRole::Owner => "owner",
            ProjectRole::Maintainer => "maintainer",
            ProjectRole::Viewer => "viewer",
        }
    }
}

pub fn project_not_found() -> ApiError {
    ApiError::not_found("Project not found")
}

pub fn repo_not_found() -> ApiError {
    ApiError::not_found("Repository not found")
}

/// The project and the caller's role in it, if the caller holds at least `needed`.
/// `project_id` is the raw path segment: anything that is not a UUID is simply not found.
pub async fn require_project(
    db: &Db,
    project_id: &str,
    user_id: Uuid,
    needed: ProjectRole,
) -> Result<(ProjectRow, ProjectRole), ApiError> {
    let id = Uuid::parse_str(project_id).map_err(|_| project_not_found())?;
    let (project, role) = store::project_with_role(db, id, user_id).await?.ok_or_else(project_not_found)?;
    let role = ProjectRole::parse(&role).ok_or_else(project_not_found)?;
    if role < needed {
        return Err(ApiError::forbidden(format!("Project role '{}' required for this action", needed.as_str())));
    }
    Ok((project, role))
}

/// A repository by id and the caller's role in its project (404 for outsiders).
pub async fn require_repo(
    db: &Db,
    repo_id: &str,
    user_id: Uuid,
    needed: ProjectRole,
) -> Result<(RepoRow, ProjectRole), ApiError> {
    let id = Uuid::parse_str(repo_id).map_err(|_| repo_not_found())?;
    let repo = store::repo_by_id(db, id).await?.ok_or_else(repo_not_found)?;
    let role = store::member_role(db, repo.project_id, user_id)
        .await?
        .and_then(|r| ProjectRole::parse(&r))
        .ok_or_else(repo_not_found)?;
    if role < needed {
        return Err(ApiError::forbidden(format!("Project role '{}' required for this action", needed.as_str())));
    }
    Ok((repo, role))
}
