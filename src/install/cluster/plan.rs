//! What install will do to each object: create it, update it, or leave a foreign CRD alone.

use std::fmt;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use serde_json::Value;

use super::Cluster;
use super::error::ClusterError;
use super::objects::{ObjectId, is_ours, manager_of};

/// What install does with one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Not in the cluster yet.
    Create,
    /// Present and ours: applied again (idempotent when unchanged).
    Update,
    /// Present without our label (e.g. a namespace someone created): ambient applies its fields
    /// over it and labels it, and from then on manages it.
    Adopt { manager: String },
    /// A CRD present without our label (Istio's or Gateway API's): left as it is.
    Keep { manager: String },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Create => f.write_str("create"),
            Action::Update => f.write_str("update"),
            Action::Adopt { manager } => write!(f, "update (adopt: present, managed by {manager})"),
            Action::Keep { manager } => write!(f, "kept: present, managed by {manager}"),
        }
    }
}

/// One object and what install does with it.
#[derive(Debug, Clone)]
pub struct PlanItem {
    pub id: ObjectId,
    pub action: Action,
    /// The object to apply.
    pub object: Value,
}

/// The plan: the manifest's objects in apply order, each with its action.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub items: Vec<PlanItem>,
}

impl Plan {
    /// How many objects get `action` (compared by variant).
    pub fn count(&self, matches: impl Fn(&Action) -> bool) -> usize {
        self.items.iter().filter(|i| matches(&i.action)).count()
    }

    /// Whether install creates namespace `name` (so nothing can be dry-run inside it yet).
    pub fn creates_namespace(&self, name: &str) -> bool {
        self.items.iter().any(|i| i.id.is_namespace() && i.id.name == name && i.action == Action::Create)
    }

    /// The plan as a table: action, kind, namespace/name.
    pub fn table(&self) -> String {
        let mut table = Table::new();
        table
            .load_style(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(["ACTION", "KIND", "NAME"]);
        for item in &self.items {
            let name = match &item.id.namespace {
                Some(ns) => format!("{ns}/{}", item.id.name),
                None => item.id.name.clone(),
            };
            table.add_row([item.action.to_string(), item.id.kind.kind.to_string(), name]);
        }
        table.to_string()
    }
}

/// Reads each object from the cluster and decides its action.
pub(crate) async fn plan(cluster: &Cluster, objects: Vec<(ObjectId, Value)>) -> Result<Plan, ClusterError> {
    let mut items = Vec::with_capacity(objects.len());
    for (id, object) in objects {
        let action = match cluster.get(&id).await? {
            None => Action::Create,
            Some(found) if is_ours(&found.metadata) => Action::Update,
            Some(found) if id.is_crd() => Action::Keep { manager: manager_of(&found.metadata) },
            Some(found) => Action::Adopt { manager: manager_of(&found.metadata) },
        };
        items.push(PlanItem { id, action, object });
    }
    Ok(Plan { items })
}
