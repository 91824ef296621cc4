use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    db::{Db, Tx},
    http::pagination::Paging,
    on_db, on_tx,
};

#[derive(Debug, Clone, FromRow)]
pub struct ProjectRow {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub description: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: OffsetDateTime,
    pub updated_at: Option<OffsetDateTime>,
    pub repos_count: i64,
}

const PROJECT_COLUMNS: &str = "p.id, p.name, p.slug, p.description, p.created_by, p.created_at, p.updated_at, \
     (SELECT COUNT(*) FROM repositories r WHERE r.project_id = p.id) AS repos_count";

#[derive(Clone, FromRow)]
pub struct RepoRow {
    pub id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    pub remote_url: Option<String>,
    pub remote_type: Option<String>,
    pub branch: String,
    pub sync_frequency: Option<String>,
    pub sync_method: String,
    pub status: String,
    pub last_sync_at: Option<OffsetDateTime>,
    pub last_ingested_sha: Option<String>,
    pub error_message: Option<String>,
    pub credentials_encrypted: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for RepoRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoRow").field("id", &self.id).field("name", &self.name).finish_non_exhaustive()
    }
}

pub const REPO_COLUMNS: &str = "id, project_id, name, remote_url, remote_type, branch, sync_frequency, sync_method, \
     status, last_sync_at, last_ingested_sha, error_message, credentials_encrypted, created_at, updated_at";

pub async fn insert_project(
    tx: &mut Tx,
    name: &str,
    slug: &str,
    description: Option<&str>,
    owner: Uuid,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    let now = OffsetDateTime::now_utc();
    on_tx!(tx, |conn| sqlx::query(
        "INSERT INTO projects (id, name, slug, description, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6)"
    )
    .bind(id)
    .bind(name)
    .bind(slug)
    .bind(description)
    .bind(owner)
    .bind(now)
    .execute(conn)
    .await
    .map(|_| ()))?;
    upsert_member(tx, id, owner, "owner").await?;
    Ok(id)
}

pub async fn upsert_member(tx: &mut Tx, project_id: Uuid, user_id: Uuid, role: &str) -> Result<(), sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query(
        "INSERT INTO project_members (project_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role"
    )
    .bind(project_id)
    .bind(user_id)
    .bind(role)
    .bind(OffsetDateTime::now_utc())
    .execute(conn)
    .await
    .map(|_| ()))
}

pub async fn remove_member(tx: &mut Tx, project_id: Uuid, user_id: Uuid) -> Result<bool, sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query("DELETE FROM project_members WHERE project_id = $1 AND user_id = $2")
        .bind(project_id)
        .bind(user_id)
        .execute(conn)
        .await
        .map(|r| r.rows_affected() > 0))
}

pub async fn count_owners(tx: &mut Tx, project_id: Uuid) -> Result<i64, sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM project_members WHERE project_id = $1 AND role = 'owner'"
    )
    .bind(project_id)
    .fetch_one(conn)
    .await)
}

pub async fn project_with_role(db: &Db, id: Uuid, user_id: Uuid) -> Result<Option<(ProjectRow, String)>, sqlx::Error> {
    let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects p WHERE p.id = $1");
    let Some(project) = on_db!(db, |pool| sqlx::query_as::<_, ProjectRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(id)
        .fetch_optional(pool)
        .await)?
    else {
        return Ok(None);
    };
    Ok(member_role(db, id, user_id).await?.map(|role| (project, role)))
}

pub async fn member_role(db: &Db, project_id: Uuid, user_id: Uuid) -> Result<Option<String>, sqlx::Error> {
    on_db!(db, |pool| sqlx::query_scalar::<_, String>(
        "SELECT role FROM project_members WHERE project_id = $1 AND user_id = $2"
    )
    .bind(project_id)
    .bind(user_id)
    .fetch_optional(pool)
    .await)
}

/// Projects the user holds a role in, newest first, with that role.
pub async fn list_projects(
    db: &Db,
    user_id: Uuid,
    paging: Paging,
) -> Result<(Vec<(ProjectRow, String)>, i64), sqlx::Error> {
    #[derive(FromRow)]
    struct Listed {
        #[sqlx(flatten)]
        project: ProjectRow,
        role: String,
    }
    let sql = format!(
        "SELECT {PROJECT_COLUMNS}, m.role FROM projects p JOIN project_members m ON m.project_id = p.id \
         WHERE m.user_id = $1 ORDER BY p.created_at DESC, p.id DESC LIMIT $2 OFFSET $3"
    );
    let rows = on_db!(db, |pool| sqlx::query_as::<_, Listed>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(user_id)
        .bind(paging.size)
        .bind(paging.offset())
        .fetch_all(pool)
        .await)?;
    let total =
        on_db!(db, |pool| sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM project_members WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(pool)
            .await)?;
    Ok((rows.into_iter().map(|l| (l.project, l.role)).collect(), total))
}

pub async fn update_project(tx: &mut Tx, id: Uuid, name: &str, description: Option<&str>) -> Result<(), sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query("UPDATE projects SET name = $2, description = $3, updated_at = $4 WHERE id = $1")
        .bind(id)
        .bind(name)
        .bind(description)
        .bind(OffsetDateTime::now_utc())
        .execute(conn)
        .await
        .map(|_| ()))
}

/// PostgreSQL: locks the repository rows of a project (`project_id`) or one repository (`id`)
/// before a deletion touches anything else. A push locks its repository's row first (the
/// foreign key of its commits, then its status) and the league rows after; a deletion that
/// reached the league rows first (the repository's own subtraction, the project's cascades)
/// could otherwise wait for the push's row while the push waits for its league rows: a deadlock.
/// SQLite has one writer at a time.
pub async fn lock_repositories(tx: &mut Tx, column: RepoLock, id: Uuid) -> Result<(), sqlx::Error> {
    if let Tx::Postgres(t) = tx {
        let sql = match column {
            RepoLock::Project => "SELECT id FROM repositories WHERE project_id = $1 ORDER BY id FOR UPDATE",
            RepoLock::Repository => "SELECT id FROM repositories WHERE id = $1 FOR UPDATE",
        };
        sqlx::query(sql).bind(id).execute(&mut **t).await?;
    }
    Ok(())
}

/// Which repositories [`lock_repositories`] locks.
#[derive(Debug, Clone, Copy)]
pub enum RepoLock {
    /// Those of a project.
    Project,
    /// One.
    Repository,
}

pub async fn delete_project(tx: &mut Tx, id: Uuid) -> Result<(), sqlx::Error> {
    lock_repositories(tx, RepoLock::Project, id).await?;
    on_tx!(tx, |conn| sqlx::query("DELETE FROM projects WHERE id = $1").bind(id).execute(conn).await.map(|_| ()))
}

#[derive(Debug, Clone, FromRow)]
pub struct MemberRow {
    pub user_id: Uuid,
    pub email: Option<String>,
    pub full_name: Option<String>,
    pub role: String,
    pub created_at: OffsetDateTime,
}

pub async fn list_members(db: &Db, project_id: Uuid) -> Result<Vec<MemberRow>, sqlx::Error> {
    on_db!(db, |pool| sqlx::query_as::<_, MemberRow>(
        "SELECT m.user_id, u.email, u.full_name, m.role, m.created_at FROM project_members m \
         JOIN users u ON u.id = m.user_id WHERE m.project_id = $1 ORDER BY m.created_at, m.user_id"
    )
    .bind(project_id)
    .fetch_all(pool)
    .await)
}

// ----- repositories -----

pub struct RepoFields<'a> {
    pub name: &'a str,
    pub remote_url: Option<&'a str>,
    pub remote_type: Option<&'a str>,
    pub branch: &'a str,
    pub sync_frequency: Option<&'a str>,
    pub sync_method: &'a str,
    pub credentials_encrypted: Option<&'a str>,
}

pub async fn insert_repo(tx: &mut Tx, project_id: Uuid, f: &RepoFields<'_>) -> Result<RepoRow, sqlx::Error> {
    let sql = format!(
        "INSERT INTO repositories (id, project_id, name, remote_url, remote_type, branch, sync_frequency, sync_method, \
         status, credentials_encrypted, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, $10) \
         RETURNING {REPO_COLUMNS}"
    );
    on_tx!(tx, |conn| sqlx::query_as::<_, RepoRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(Uuid::now_v7())
        .bind(project_id)
        .bind(f.name)
        .bind(f.remote_url)
        .bind(f.remote_type)
        .bind(f.branch)
        .bind(f.sync_frequency)
        .bind(f.sync_method)
        .bind(f.credentials_encrypted)
        .bind(OffsetDateTime::now_utc())
        .fetch_one(conn)
        .await)
}

pub async fn update_repo(tx: &mut Tx, id: Uuid, f: &RepoFields<'_>) -> Result<RepoRow, sqlx::Error> {
    let sql = format!(
        "UPDATE repositories SET name = $2, remote_url = $3, remote_type = $4, branch = $5, sync_frequency = $6, \
         sync_method = $7, credentials_encrypted = $8, updated_at = $9 WHERE id = $1 RETURNING {REPO_COLUMNS}"
    );
    on_tx!(tx, |conn| sqlx::query_as::<_, RepoRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(id)
        .bind(f.name)
        .bind(f.remote_url)
        .bind(f.remote_type)
        .bind(f.branch)
        .bind(f.sync_frequency)
        .bind(f.sync_method)
        .bind(f.credentials_encrypted)
        .bind(OffsetDateTime::now_utc())
        .fetch_one(conn)
        .await)
}

pub async fn delete_repo(tx: &mut Tx, id: Uuid) -> Result<(), sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query("DELETE FROM repositories WHERE id = $1").bind(id).execute(conn).await.map(|_| ()))
}

pub async fn repo_by_id(db: &Db, id: Uuid) -> Result<Option<RepoRow>, sqlx::Error> {
    let sql = format!("SELECT {REPO_COLUMNS} FROM repositories WHERE id = $1");
    on_db!(db, |pool| sqlx::query_as::<_, RepoRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(id)
        .fetch_optional(pool)
        .await)
}

/// A repository of `project_id` by its id or, failing that, its name (gitleague-client puts
/// whatever `git_url` holds into the path).
pub async fn repo_in_project(db: &Db, project_id: Uuid, id_or_name: &str) -> Result<Option<RepoRow>, sqlx::Error> {
    if let Ok(id) = Uuid::parse_str(id_or_name) {
        let sql = format!("SELECT {REPO_COLUMNS} FROM repositories WHERE id = $1 AND project_id = $2");
        let found = on_db!(db, |pool| sqlx::query_as::<_, RepoRow>(sqlx::AssertSqlSafe(sql.clone()))
            .bind(id)
            .bind(project_id)
            .fetch_optional(pool)
            .await)?;
        if found.is_some() {
            return Ok(found);
        }
    }
    let sql = format!("SELECT {REPO_COLUMNS} FROM repositories WHERE project_id = $1 AND name = $2");
    on_db!(db, |pool| sqlx::query_as::<_, RepoRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(project_id)
        .bind(id_or_name)
        .fetch_optional(pool)
        .await)
}

pub async fn list_repos(db: &Db, project_id: Uuid, paging: Paging) -> Result<(Vec<RepoRow>, i64), sqlx::Error> {
    let sql = format!(
        "SELECT {REPO_COLUMNS} FROM repositories WHERE project_id = $1 ORDER BY created_at, id LIMIT $2 OFFSET $3"
    );
    let rows = on_db!(db, |pool| sqlx::query_as::<_, RepoRow>(sqlx::AssertSqlSafe(sql.clone()))
        .bind(project_id)
        .bind(paging.size)
        .bind(paging.offset())
        .fetch_all(pool)
        .await)?;
    let total =
        on_db!(db, |pool| sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM repositories WHERE project_id = $1")
            .bind(project_id)
            .fetch_one(pool)
            .await)?;
    Ok((rows, total))
}
