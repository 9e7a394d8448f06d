//! The client's connection loop: connect, send the initial requests, apply responses and
//! ACK/NACK them, forward on-demand (un)subscriptions; on failure reconnect with backoff.

use std::sync::Arc;

use tokio::sync::mpsc;
use tonic::metadata::MetadataValue;
use tonic::transport::Endpoint;
use tracing::{debug, info, warn};

use super::state::handle;
use super::{ClientConfig, ClientError, Command, Shared, TokenSource};
use crate::xds::proto::discovery::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use crate::xds::proto::discovery::{DeltaDiscoveryRequest, DeltaDiscoveryResponse};

/// Requests queued ahead of the transport (ACKs and subscriptions are small and few).
const REQUEST_QUEUE: usize = 64;
/// Largest response accepted: a full state of a large cluster comes in one response.
const MAX_RESPONSE: usize = 256 * 1024 * 1024;

pub(super) async fn run(
    shared: Arc<Shared>,
    config: ClientConfig,
    endpoint: Endpoint,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut delay = config.backoff_initial;
    loop {
        let mut received = false;
        let result = stream(&shared, &config, &endpoint, &mut commands, &mut received).await;
        shared.status.send_modify(|s| {
            s.connected = false;
            s.last_error = result.as_ref().err().map(ToString::to_string);
        });
        match result {
            Err(ClientError::Closed) => return,
            Err(error) => warn!(%error, retry_in = ?delay, "xDS stream ended"),
            Ok(()) => info!(address = %config.address, retry_in = ?delay, "xDS server closed the stream"),
        }
        if received {
            delay = config.backoff_initial;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(config.backoff_max);
    }
}

/// One stream, until it ends. `Ok` when the server ended it cleanly.
async fn stream(
    shared: &Shared,
    config: &ClientConfig,
    endpoint: &Endpoint,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    received: &mut bool,
) -> Result<(), ClientError> {
    let address = &config.address;
    let token = match &config.token {
        None => None,
        Some(TokenSource::Value(token)) => Some(token.trim().to_string()),
        Some(TokenSource::File(path)) => {
            let token = tokio::fs::read_to_string(path)
                .await
                .map_err(|source| ClientError::TokenFile { path: path.clone(), source })?;
            Some(token.trim().to_string())
        }
    };
    let channel =
        endpoint.connect().await.map_err(|source| ClientError::Connect { address: address.clone(), source })?;
    let mut client = AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(MAX_RESPONSE);

    let (requests, outbound) = mpsc::channel::<DeltaDiscoveryRequest>(REQUEST_QUEUE);
    let initial: Vec<_> = shared.lock().iter().map(|t| t.initial_request(&shared.node)).collect();
    for request in initial {
        requests.send(request).await.map_err(|_| ClientError::Closed)?;
    }
    let mut outbound = outbound;
    let mut request = tonic::Request::new(futures::stream::poll_fn(move |cx| outbound.poll_recv(cx)));
    if let Some(token) = token {
        let value = MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| ClientError::InvalidToken)?;
        request.metadata_mut().insert("authorization", value);
    }
    let stream_error = |status| ClientError::Stream { address: address.clone(), status };
    let mut responses = client.delta_aggregated_resources(request).await.map_err(stream_error)?.into_inner();
    info!(%address, "xDS stream open");
    shared.status.send_modify(|s| {
        s.connected = true;
        s.streams += 1;
        s.last_error = None;
    });

    loop {
        tokio::select! {
            message = responses.message() => match message.map_err(stream_error)? {
                Some(response) => {
                    *received = true;
                    let reply = on_response(shared, response);
                    requests.send(reply).await.map_err(|_| ClientError::Closed)?;
                }
                None => return Ok(()),
            },
            command = commands.recv() => match command {
                Some(command) => {
                    if let Some(request) = on_command(shared, command) {
                        requests.send(request).await.map_err(|_| ClientError::Closed)?;
                    }
                }
                None => return Err(ClientError::Closed),
            },
        }
    }
}

/// Applies a response (handler first, then the state) and returns its ACK or NACK.
fn on_response(shared: &Shared, response: DeltaDiscoveryResponse) -> DeltaDiscoveryRequest {
    let prepared = {
        let types = shared.lock();
        types.iter().find(|t| t.type_url == response.type_url).map(|t| (t.handler(), t.changes_of(&response)))
    };
    let Some((handler, (upserts, removals))) = prepared else {
        warn!(type_url = %response.type_url, "response for a type this client did not subscribe to");
        return DeltaDiscoveryRequest {
            type_url: response.type_url.clone(),
            response_nonce: response.nonce.clone(),
            ..Default::default()
        };
    };
    // The handler runs without the lock: it may read the client's state.
    let (rejections, outcome) = handle(handler.as_deref(), &response, &upserts, &removals);
    if let Some(state) = shared.lock().iter_mut().find(|t| t.type_url == response.type_url) {
        state.apply(&response, upserts, &rejections);
    }
    if outcome.rejected {
        warn!(
            type_url = %response.type_url,
            nonce = %response.nonce,
            error = outcome.reply.error_detail.as_ref().map_or("", |e| e.message.as_str()),
            "rejecting xDS resources (NACK)"
        );
    } else {
        debug!(
            type_url = %response.type_url,
            nonce = %response.nonce,
            upserts = response.resources.len(),
            removals = response.removed_resources.len(),
            "xDS response applied"
        );
    }
    shared.status.send_modify(|s| {
        s.revision += 1;
        if outcome.rejected {
            s.nacks += 1;
        } else {
            s.acks += 1;
        }
    });
    outcome.reply
}

fn on_command(shared: &Shared, command: Command) -> Option<DeltaDiscoveryRequest> {
    match command {
        Command::Subscribe { type_url, name } => {
            Some(DeltaDiscoveryRequest { type_url, resource_names_subscribe: vec![name], ..Default::default() })
        }
        Command::Unsubscribe { type_url, name } => {
            let (handler, dropped) = {
                let types = shared.lock();
                let state = types.iter().find(|t| t.type_url == type_url)?;
                (state.handler(), state.unsubscribed(&name))
            };
            if let Some(dropped) = dropped {
                let removals = [dropped];
                let changes = super::Changes { type_url: &type_url, upserts: &[], removals: &removals };
                if let Some(handler) = handler {
                    // Removals cannot be rejected.
                    let _ = handler.apply(&changes);
                }
                if let Some(state) = shared.lock().iter_mut().find(|t| t.type_url == type_url) {
                    state.remove(&removals[0]);
                }
                shared.status.send_modify(|s| s.revision += 1);
            }
            Some(DeltaDiscoveryRequest { type_url, resource_names_unsubscribe: vec![name], ..Default::default() })
        }
    }
}
