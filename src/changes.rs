//! Change notifications between gateway instances: a write that makes cached state wrong (a
//! key blocked, deleted or changed) is announced on the Redis channel `hx:changes`, and every
//! instance that shares the Redis drops its copy at once instead of serving it until its cache
//! TTL runs out. Without Redis, or while it is unreachable, the TTL is the bound, as it is for
//! writes made by a LiteLLM instance (which announces nothing). After its subscription breaks,
//! an instance drops every cached copy once it is subscribed again: what it missed meanwhile
//! is then read afresh.
//!
//! In-process, changes fan out on a broadcast channel ([`ChangeBus::subscribe`]); the owner of
//! each cache listens there, so this module knows no cache. Messages carry the instance's id
//! (an instance ignores its own, it applied them already) and the key's hash, never a secret.

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::broadcast;

use crate::link::RedisLink;

/// The Redis channel.
const CHANNEL: &str = "hx:changes";

/// How long a broken subscription waits before it tries again.
const RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);

/// One change that cached copies must follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The key with this token hash changed (blocked, unblocked, deleted, updated).
    Key(String),
    /// The team with this id changed (limits, models, members, blocked, deleted): every
    /// cached key of the team is stale.
    Team(String),
    /// The user with this id changed (role, models, budget, deleted): every cached key of the
    /// user is stale.
    User(String),
    /// The end user (customer) with this id changed.
    Customer(String),
    /// The budget row (`"LiteLLM_BudgetTable"`) with this id changed: whoever uses it is stale.
    Budget(String),
    /// Anything may have changed (a subscription was broken): drop every cached copy.
    Everything,
}

impl Change {
    fn encode(&self, instance: &str) -> String {
        match self {
            Change::Key(id) => format!("{instance} key {id}"),
            Change::Team(id) => format!("{instance} team {id}"),
            Change::User(id) => format!("{instance} user {id}"),
            Change::Customer(id) => format!("{instance} customer {id}"),
            Change::Budget(id) => format!("{instance} budget {id}"),
            Change::Everything => format!("{instance} all"),
        }
    }

    /// A message of another instance; `None` for one's own and for what cannot be read.
    fn decode(message: &str, instance: &str) -> Option<Change> {
        // The id is the rest of the message: team and user ids may hold spaces.
        let mut words = message.splitn(3, ' ');
        let from = words.next()?;
        if from == instance {
            return None;
        }
        let kind = words.next()?;
        let id = words.next().map(str::to_string);
        match (kind, id) {
            ("all", None) => Some(Change::Everything),
            (_, Some(id)) if id.is_empty() => None,
            ("key", Some(id)) if !id.contains(' ') => Some(Change::Key(id)),
            ("team", Some(id)) => Some(Change::Team(id)),
            ("user", Some(id)) => Some(Change::User(id)),
            ("customer", Some(id)) => Some(Change::Customer(id)),
            ("budget", Some(id)) => Some(Change::Budget(id)),
            _ => None,
        }
    }
}

/// Announces changes to the other instances and hands theirs (and this instance's own) to
/// local listeners. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ChangeBus {
    local: broadcast::Sender<Change>,
    redis: Option<RedisLink>,
    instance: String,
}

impl ChangeBus {
    /// A bus for one instance alone.
    pub fn local() -> Self {
        ChangeBus {
            local: broadcast::channel(1024).0,
            redis: None,
            instance: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    /// A bus shared through the Redis at `url`: publishes with `link`, and subscribes on a
    /// connection of its own in a background task (needs a tokio runtime). Fails only on a
    /// malformed URL.
    pub fn redis(url: &str, link: RedisLink) -> Result<Self, String> {
        let client = redis::Client::open(url)
            .map_err(|_| format!("invalid redis url {}", crate::secret::redact_url(url)))?;
        let mut bus = ChangeBus::local();
        bus.redis = Some(link);
        let local = bus.local.clone();
        let instance = bus.instance.clone();
        tokio::spawn(subscribe(client, local, instance));
        Ok(bus)
    }

    /// Applies `change` here and announces it to the other instances (best effort: an
    /// unreachable Redis leaves them to their TTL).
    pub async fn publish(&self, change: Change) {
        let _ = self.local.send(change.clone());
        let Some(link) = &self.redis else {
            return;
        };
        let message = change.encode(&self.instance);
        let sent = link
            .call(|mut conn| async move {
                redis::cmd("PUBLISH")
                    .arg(CHANNEL)
                    .arg(message)
                    .query_async::<i64>(&mut conn)
                    .await
            })
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "could not announce a change to the other instances; they follow within their cache TTL");
        }
    }

    /// The changes to follow from now on, this instance's and the others'.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.local.subscribe()
    }
}

/// Listens on the channel for as long as the process lives, subscribing again after a break
/// (and then announcing [`Change::Everything`] locally, for what was missed).
async fn subscribe(client: redis::Client, local: broadcast::Sender<Change>, instance: String) {
    let mut broken = false;
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(CHANNEL).await {
                Ok(()) => {
                    if broken {
                        tracing::info!(
                            "change notifications subscribed again; cached keys dropped"
                        );
                        let _ = local.send(Change::Everything);
                    }
                    let mut messages = pubsub.on_message();
                    while let Some(message) = messages.next().await {
                        let Ok(text) = message.get_payload::<String>() else {
                            continue;
                        };
                        if let Some(change) = Change::decode(&text, &instance) {
                            let _ = local.send(change);
                        }
                    }
                    tracing::warn!("change notification subscription ended; subscribing again");
                }
                Err(e) => {
                    tracing::warn!(error = ?e.kind(), "could not subscribe to change notifications")
                }
            },
            Err(e) => tracing::debug!(error = ?e.kind(), "change notifications: redis unreachable"),
        }
        broken = true;
        tokio::time::sleep(RESUBSCRIBE_DELAY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_of_other_instances_decode_and_ones_own_are_ignored() {
        let key = Change::Key("abc123".into());
        assert_eq!(Change::decode(&key.encode("i1"), "i2"), Some(key.clone()));
        assert_eq!(Change::decode(&key.encode("i1"), "i1"), None);
        assert_eq!(
            Change::decode(&Change::Everything.encode("i1"), "i2"),
            Some(Change::Everything)
        );
        for change in [
            Change::Team("team one".into()),
            Change::User("u@example.com".into()),
            Change::Customer("c1".into()),
            Change::Budget("b1".into()),
        ] {
            assert_eq!(Change::decode(&change.encode("i1"), "i2"), Some(change));
        }
        for junk in [
            "",
            "i1",
            "i1 key",
            "i1 key ",
            "i1 team ",
            "i1 group x",
            "i1 all extra",
        ] {
            assert_eq!(Change::decode(junk, "i2"), None, "{junk:?}");
        }
    }

    #[tokio::test]
    async fn a_local_bus_hands_its_own_changes_to_its_listeners() {
        let bus = ChangeBus::local();
        let mut listener = bus.subscribe();
        bus.publish(Change::Key("t".into())).await;
        assert_eq!(listener.recv().await.unwrap(), Change::Key("t".into()));
    }
}
