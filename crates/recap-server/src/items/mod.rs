//! Items: the template's example resource and the first owner-scoped CRUD. Every item belongs to
//! the user who created it; nobody else (admins included) sees it, and to anyone else it does
//! not exist (404, never 403).

pub mod model;
pub mod routes;
pub mod store;
