//! The server's state as the emulator's store holds it, read over plain
//! HTTP (never through the core or its backend), and how the model learns
//! the ids and creation times of new objects from it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::reference::*;
use crate::semantics::bytes_brief;

#[derive(Debug, Clone, serde::Deserialize)]
pub struct StoreObj {
    #[serde(rename = "_id")]
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename = "parentId", default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(rename = "createdAt")]
    pub created: String,
    pub status: String,
}

impl StoreObj {
    pub fn kind(&self) -> Kind {
        if self.kind == "folder" {
            Kind::Dir
        } else {
            Kind::File
        }
    }

    pub fn active(&self) -> bool {
        self.status == "active"
    }
}

#[derive(serde::Deserialize)]
struct Objects {
    objects: Vec<StoreObj>,
}

/// Every object of the location, oldest first; file bytes by id (an
/// object's bytes never change, so each is fetched once).
pub struct Store {
    http: reqwest::Client,
    base: String,
    location: String,
    pub bytes: HashMap<String, Arc<Vec<u8>>>,
}

impl Store {
    pub fn new(base: &str, location: &str) -> Store {
        Store {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap(),
            base: base.to_owned(),
            location: location.to_owned(),
            bytes: HashMap::new(),
        }
    }

    pub async fn objects(&mut self) -> Result<Vec<StoreObj>, String> {
        let url = format!("{}/_emulator/objects?location={}", self.base, self.location);
        let got: Objects = self
            .http
            .get(url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("reading the store: {e}"))?
            .json()
            .await
            .map_err(|e| format!("reading the store: {e}"))?;
        for o in &got.objects {
            if let (Kind::File, Some(url), false) =
                (o.kind(), &o.url, self.bytes.contains_key(&o.id))
            {
                let body = self
                    .http
                    .get(url)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                    .map_err(|e| format!("fetching {url}: {e}"))?
                    .bytes()
                    .await
                    .map_err(|e| format!("fetching {url}: {e}"))?;
                self.bytes.insert(o.id.clone(), Arc::new(body.to_vec()));
            }
        }
        Ok(got.objects)
    }
}

fn describe(o: &StoreObj, bytes: &HashMap<String, Arc<Vec<u8>>>) -> String {
    let content = bytes.get(&o.id).map(|b| bytes_brief(b)).unwrap_or_default();
    format!(
        "{} {:?} {} in {} ({}) {content}",
        o.kind,
        o.name,
        o.id,
        o.parent.as_deref().unwrap_or("root"),
        o.status
    )
}

impl Model {
    fn describe_obj(&self, k: Key) -> String {
        let o = &self.objs[k];
        let parent = o
            .parent
            .map_or("root".to_owned(), |p| format!("{:?}", self.objs[p].name));
        let content = o.bytes.as_ref().map(|b| bytes_brief(b)).unwrap_or_default();
        let status = if o.active { "active" } else { "trashed" };
        format!("{:?} {:?} in {parent} ({status}) {content}", o.kind, o.name)
    }

    fn parent_id(&self, k: Key) -> Option<Option<String>> {
        match self.objs[k].parent {
            None => Some(None),
            Some(p) => self.objs[p].id.clone().map(Some),
        }
    }

    fn matches(&self, k: Key, s: &StoreObj, bytes: &HashMap<String, Arc<Vec<u8>>>) -> bool {
        let o = &self.objs[k];
        o.kind == s.kind()
            && o.name == s.name
            && o.active == s.active()
            && self.parent_id(k) == Some(s.parent.clone())
            && match &o.bytes {
                Some(b) => {
                    s.size == Some(b.len() as u64) && bytes.get(&s.id).is_some_and(|got| got == b)
                }
                None => true,
            }
    }

    /// Checks the store against the model; new objects get their ids and
    /// creation times from it. Every difference is an error.
    pub fn reconcile(
        &mut self,
        store: &[StoreObj],
        bytes: &HashMap<String, Arc<Vec<u8>>>,
    ) -> Result<(), String> {
        let by_id: BTreeMap<&str, &StoreObj> = store.iter().map(|o| (o.id.as_str(), o)).collect();
        let mut problems = Vec::new();
        for k in 0..self.objs.len() {
            let Some(id) = self.objs[k].id.clone() else {
                continue;
            };
            match by_id.get(id.as_str()) {
                Some(s) if self.matches(k, s, bytes) => {}
                Some(s) => problems.push(format!(
                    "expected {}\n      got {}",
                    self.describe_obj(k),
                    describe(s, bytes)
                )),
                None => problems.push(format!("missing from the store: {}", self.describe_obj(k))),
            }
        }
        let known: Vec<&str> = self.objs.iter().filter_map(|o| o.id.as_deref()).collect();
        let mut unknown: Vec<&StoreObj> = store
            .iter()
            .filter(|o| !known.contains(&o.id.as_str()))
            .collect();
        for k in 0..self.objs.len() {
            if self.objs[k].id.is_some() {
                continue;
            }
            match unknown.iter().position(|s| self.matches(k, s, bytes)) {
                Some(i) => {
                    let s = unknown.remove(i);
                    self.objs[k].id = Some(s.id.clone());
                    self.objs[k].created = Some(s.created.clone());
                }
                None => problems.push(format!("expected a new object: {}", self.describe_obj(k))),
            }
        }
        for s in unknown {
            problems.push(format!("unexpected on the server: {}", describe(s, bytes)));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n    "))
        }
    }
}
