use recap_server::db::{Db, migrate};

use crate::{
    engine_tests,
    helpers::{Engine, spawn_with},
};

engine_tests!(migrations_go_up_down_to_zero_and_up_again);

async fn migrations_go_up_down_to_zero_and_up_again(engine: Engine) {
    // Start unmigrated, then drive the schema by hand as `recap db ...` does.
    let Some(app) = spawn_with(engine, |s| s.auto_migrate = false, Default::default()).await else { return };
    let db: &Db = &app.state.db;
    assert_eq!(migrate::current(db).await.unwrap(), None);
    let history = migrate::history(db).await.unwrap();
    assert!(!history.is_empty());
    assert!(history.iter().all(|m| m.applied_at.is_none()));

    let applied = migrate::upgrade(db).await.unwrap();
    assert_eq!(applied.len(), history.len());
    let latest = migrate::latest_known(db);
    assert_eq!(migrate::current(db).await.unwrap(), latest);
    assert!(
        migrate::history(db).await.unwrap().iter().all(|m| m.applied_at.as_deref().is_some_and(|t| t.ends_with('Z')))
    );
    assert!(db.ensure_instance_id().await.is_ok());
    assert!(migrate::upgrade(db).await.unwrap().is_empty(), "upgrade is idempotent");

    let reverted = migrate::downgrade(db, 1).await.unwrap();
    assert_eq!(reverted, vec![latest.unwrap()]);
    let reverted = migrate::downgrade(db, 1000).await.unwrap();
    assert_eq!(reverted.len(), history.len() - 1);
    assert_eq!(migrate::current(db).await.unwrap(), None);
    // The tables are really gone.
    assert!(db.ensure_instance_id().await.is_err());

    migrate::upgrade(db).await.unwrap();
    assert_eq!(migrate::current(db).await.unwrap(), latest);
    assert!(db.ensure_instance_id().await.is_ok());
}
