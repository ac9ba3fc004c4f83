//! Opaque identifiers. Every id the server issues is a ULID, so ids sort by creation time and a
//! malformed id in a path can be refused (as "not found") without touching the store.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! ulid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses an id sent by a client or read from storage.
            pub fn parse(raw: &str) -> Option<Self> {
                // Only the canonical form the server issues (upper-case Crockford base 32), so an
                // id names one object and matches the API description's pattern exactly.
                let canonical = raw.len() == 26
                    && raw.bytes().all(|b| b.is_ascii_digit() || (b.is_ascii_uppercase() && !b"ILOU".contains(&b)));
                if !canonical {
                    return None;
                }
                ulid::Ulid::from_string(raw).ok().map(|u| Self(u.to_string()))
            }

            /// Wraps a freshly generated ULID.
            pub fn from_ulid(id: ulid::Ulid) -> Self {
                Self(id.to_string())
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(raw: String) -> Result<Self, String> {
                Self::parse(&raw).ok_or_else(|| format!("{raw:?} is not a valid id"))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

ulid_id!(
    /// Identifies a story.
    StoryId
);
ulid_id!(
    /// Identifies a scene.
    SceneId
);
ulid_id!(
    /// Identifies a scene prompt.
    PromptId
);
ulid_id!(
    /// Identifies a job.
    JobId
);
ulid_id!(
    /// Identifies a webhook endpoint.
    WebhookId
);

/// The owner of a story: the JWT `sub` of the caller who created it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    /// Longest `sub` accepted.
    pub const MAX_LEN: usize = 255;

    /// A user id from a token's `sub`: non-empty, at most 255 characters, no control characters,
    /// and not `system`, which names the worker in a story's history.
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = !raw.is_empty()
            && raw != "system"
            && raw.chars().count() <= Self::MAX_LEN
            && !raw.chars().any(char::is_control);
        ok.then(|| Self(raw.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UserId {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw).ok_or_else(|| "not a valid user id".to_owned())
    }
}

impl From<UserId> for String {
    fn from(id: UserId) -> String {
        id.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who made a change: a user, or the system (the worker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Actor {
    /// A signed-in user.
    User(UserId),
    /// The worker or another server-side process.
    System,
}

impl TryFrom<String> for Actor {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        if raw == "system" { Ok(Actor::System) } else { UserId::try_from(raw).map(Actor::User) }
    }
}

impl From<Actor> for String {
    fn from(actor: Actor) -> String {
        match actor {
            Actor::User(user) => user.into(),
            Actor::System => "system".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn story_id_accepts_only_ulids() {
        assert!(StoryId::parse("01JD0000000000000000000000").is_some());
        assert!(StoryId::parse("not-an-id").is_none());
        assert!(StoryId::parse("").is_none());
        assert!(StoryId::parse("../../etc/passwd").is_none());
    }

    #[test]
    fn user_id_refuses_empty_and_control_characters() {
        assert!(UserId::parse("alice").is_some());
        assert!(UserId::parse("").is_none());
        assert!(UserId::parse("system").is_none());
        assert!(UserId::parse("a\nb").is_none());
        assert!(UserId::parse(&"x".repeat(256)).is_none());
    }

    #[test]
    fn actor_round_trips_through_text() {
        let system: String = Actor::System.into();
        assert_eq!(system, "system");
        assert_eq!(Actor::try_from("bob".to_owned()), Ok(Actor::User(UserId::parse("bob").unwrap())));
    }
}
