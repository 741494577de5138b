//! The engine's REST control plane assembled: the routes of [`super::login`] and the resource
//! modules (`resources`, `transfers`, `backups`, `vms`, `nics`, `networks`, `snapshots`, `jobs`,
//! `events`, `devices`, `faults`, `backup_load`) over one [`Engine`] state, with the middleware every call
//! goes through (fault injection, jobs, login, faults in XML). The routes depend on the state ([`super::state`]) and the answers
//! ([`super::reply`]); only this module knows them all.

use std::sync::Arc;

use axum::Router;

use super::state::Engine;

/// The whole API over `engine`; the backup routes only where its version has them (4.4+).
pub fn router(engine: Arc<Engine>) -> Router {
    let routes = Router::new()
        .merge(super::login::routes())
        .merge(super::resources::routes())
        .merge(super::transfers::routes());
    let routes = if engine.version.has_backup_api() {
        routes.merge(super::backups::routes())
    } else {
        routes
    };
    routes
        .merge(super::vms::routes())
        .merge(super::nics::routes())
        .merge(super::networks::routes())
        .merge(super::snapshots::routes())
        .merge(super::disk_snapshots::routes())
        .merge(super::jobs::routes())
        .merge(super::events::routes())
        .merge(super::devices::routes())
        .merge(super::faults::routes())
        .merge(super::backup_load::routes())
        .layer(axum::middleware::from_fn_with_state(
            engine.clone(),
            super::jobs::track,
        ))
        .layer(axum::middleware::from_fn_with_state(
            engine.clone(),
            super::faults::inject,
        ))
        .layer(axum::middleware::from_fn_with_state(
            engine.clone(),
            super::login::require_login,
        ))
        .layer(axum::middleware::from_fn(super::reply::faults_as_asked))
        .with_state(engine)
}
