//! A fake Kubernetes API server behind kube's mock service: answers list and watch requests per
//! kind from scripted replies (recorded API responses), and records every request it sees.
//!
//! Each (kind, list|watch) route has a queue of replies. A request takes the next reply; with
//! nothing queued, a list gets the last list reply again (or an empty list), and a watch is held
//! open without events, like an idle watch. A queued [`Reply::Hold`] holds a request the same
//! way. A reply pushed while a request is held answers that request.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use ambient::config::kube::api_resource;
use ambient::model::Kind;
use http::{Request, Response};
use kube::Resource as _;
use kube::api::DynamicObject;
use kube::client::Body;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tower_test::mock::{Handle, SendResponse};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    List,
    Watch,
}

/// What the server answers one request with.
#[derive(Clone, Debug)]
pub enum Reply {
    /// An HTTP status and a JSON body (a list, a Status, or newline-delimited watch events).
    Body(u16, String),
    /// Keep the request open without answering.
    Hold,
}

/// A request the server saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub kind: Option<Kind>,
    pub verb: Verb,
    pub uri: String,
}

impl Seen {
    /// The value of a query parameter.
    pub fn param(&self, name: &str) -> Option<String> {
        query_param(&self.uri, name)
    }
}

fn query_param(uri: &str, name: &str) -> Option<String> {
    let query = uri.split_once('?')?.1;
    query.split('&').filter_map(|p| p.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
}

type Log = Arc<Mutex<Vec<Seen>>>;

pub struct FakeApi {
    control: mpsc::UnboundedSender<(Kind, Verb, Reply)>,
    log: Log,
    task: JoinHandle<()>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads a recorded response from `tests/fixtures/kube/`.
pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/kube/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// `200 OK` with a recorded body.
pub fn ok(name: &str) -> Reply {
    Reply::Body(200, fixture(name))
}

fn path_of(kind: Kind) -> String {
    DynamicObject::url_path(&api_resource(kind), None)
}

fn empty_list(kind: Kind) -> String {
    serde_json::json!({
        "kind": format!("{}List", kind.name()),
        "apiVersion": kind.api_version(),
        "metadata": {"resourceVersion": "1"},
        "items": [],
    })
    .to_string()
}

fn respond(send: SendResponse<Response<Body>>, code: u16, body: String) {
    let response = Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(body.into_bytes()))
        .expect("valid response");
    send.send_response(response);
}

#[derive(Default)]
struct Route {
    queue: VecDeque<Reply>,
    held: VecDeque<SendResponse<Response<Body>>>,
    last_list: Option<(u16, String)>,
}

impl FakeApi {
    /// A fake server and a client talking to it.
    pub fn start() -> (FakeApi, kube::Client) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "default");
        let (control, rx) = mpsc::unbounded_channel();
        let log = Log::default();
        let task = tokio::spawn(serve(handle, rx, log.clone()));
        (FakeApi { control, log, task }, client)
    }

    /// Queues a reply for the next request of `kind` and `verb` (or answers one held now).
    pub fn reply(&self, kind: Kind, verb: Verb, reply: Reply) {
        self.control.send((kind, verb, reply)).expect("fake API server is running");
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.log.lock().expect("log lock").clone()
    }

    /// The requests so far for `kind` and `verb`.
    pub fn requests_for(&self, kind: Kind, verb: Verb) -> Vec<Seen> {
        self.requests().into_iter().filter(|s| s.kind == Some(kind) && s.verb == verb).collect()
    }
}

async fn serve(
    mut handle: Handle<Request<Body>, Response<Body>>,
    mut control: mpsc::UnboundedReceiver<(Kind, Verb, Reply)>,
    log: Log,
) {
    let mut routes: HashMap<(Kind, Verb), Route> = HashMap::new();
    loop {
        tokio::select! {
            request = handle.next_request() => {
                let Some((request, send)) = request else { return };
                let uri = request.uri().to_string();
                let path = request.uri().path();
                let watch = query_param(&uri, "watch").as_deref() == Some("true");
                let verb = if watch { Verb::Watch } else { Verb::List };
                let kind = Kind::ALL.iter().copied().find(|&k| path_of(k) == path);
                log.lock().expect("log lock").push(Seen { kind, verb, uri });
                let Some(kind) = kind else {
                    let status = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"the server could not find the requested resource","reason":"NotFound","code":404}"#;
                    respond(send, 404, status.to_string());
                    continue;
                };
                let route = routes.entry((kind, verb)).or_default();
                match (route.queue.pop_front(), verb) {
                    (Some(Reply::Body(code, body)), _) => {
                        if verb == Verb::List {
                            route.last_list = Some((code, body.clone()));
                        }
                        respond(send, code, body);
                    }
                    (Some(Reply::Hold), _) | (None, Verb::Watch) => route.held.push_back(send),
                    (None, Verb::List) => {
                        let (code, body) = route.last_list.clone().unwrap_or_else(|| (200, empty_list(kind)));
                        respond(send, code, body);
                    }
                }
            }
            command = control.recv() => {
                let Some((kind, verb, reply)) = command else { return };
                let route = routes.entry((kind, verb)).or_default();
                match reply {
                    Reply::Body(code, body) if !route.held.is_empty() => {
                        if verb == Verb::List {
                            route.last_list = Some((code, body.clone()));
                        }
                        if let Some(send) = route.held.pop_front() {
                            respond(send, code, body);
                        }
                    }
                    reply => route.queue.push_back(reply),
                }
            }
        }
    }
}
