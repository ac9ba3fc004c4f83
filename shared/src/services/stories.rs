//! Story use cases: create, read, edit, delete, move, lock, history and figures.

use std::sync::Arc;

use crate::domain::error::{Error, Result};
use crate::domain::ids::{Actor, StoryId, UserId};
use crate::domain::pagination::{Page, PageRequest};
use crate::domain::state_machine::{Mover, StoryStatus};
use crate::domain::statistics::StoryStatistics;
use crate::domain::story::{NewStory, Story, StoryEdit};
use crate::domain::transition::StoryStateTransition;
use crate::domain::values::Reason;
use crate::ports::{Clock, IdGenerator, MoveRequest, StoryFilter, StoryStore};

/// The Stories use cases.
#[derive(Clone)]
pub struct StoryService {
    store: Arc<dyn StoryStore>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
}

impl StoryService {
    /// Wires the use cases to their ports.
    pub fn new(store: Arc<dyn StoryStore>, clock: Arc<dyn Clock>, ids: Arc<dyn IdGenerator>) -> Self {
        Self { store, clock, ids }
    }

    /// Creates a DRAFT story owned by `owner`. With `keyed` (the id an `Idempotency-Key` derives),
    /// a story already created under that id by an earlier try of the same request is the answer:
    /// never a second story.
    pub async fn create(&self, owner: &UserId, new: NewStory, keyed: Option<ulid::Ulid>) -> Result<Story> {
        let id = StoryId::from_ulid(keyed.unwrap_or_else(|| self.ids.new_id()));
        let story = Story::create(id, owner.clone(), new, self.clock.now());
        match self.store.create_story(&story).await {
            Ok(()) => Ok(story),
            Err(crate::Error::Conflict { .. }) if keyed.is_some() => {
                tracing::info!(story_id = %story.id, "an earlier try of this keyed request created the story");
                self.store.story(owner, &story.id).await
            }
            Err(e) => Err(e),
        }
    }

    /// One of `owner`'s stories.
    pub async fn get(&self, owner: &UserId, id: &StoryId) -> Result<Story> {
        self.store.story(owner, id).await
    }

    /// A page of `owner`'s stories.
    pub async fn list(&self, owner: &UserId, filter: &StoryFilter, page: &PageRequest) -> Result<Page<Story>> {
        self.store.list_stories(owner, filter, page).await
    }

    /// Changes writable fields (PUT/PATCH).
    pub async fn edit(
        &self,
        owner: &UserId,
        id: &StoryId,
        edit: StoryEdit,
        expected_version: Option<u64>,
    ) -> Result<Story> {
        if edit.is_empty() {
            // Nothing to write: answer with the story as it is, after the same checks.
            let story = self.store.story(owner, id).await?;
            story.check_version(expected_version)?;
            return Ok(story);
        }
        self.store.edit_story(owner, id, edit, expected_version, self.clock.now()).await
    }

    /// Deletes a story with everything that belongs to it.
    pub async fn delete(&self, owner: &UserId, id: &StoryId, expected_version: Option<u64>) -> Result<()> {
        self.store.delete_story(owner, id, expected_version).await
    }

    /// The owner asks to move the story through `transition/`; `request` names a keyed request
    /// (`Idempotency-Key`): the move is recorded with it, and a retry of it that finds the move
    /// already made — its first answer was lost to a crash — answers with the story, not 409.
    pub async fn transition(
        &self,
        owner: &UserId,
        id: &StoryId,
        to: StoryStatus,
        reason: Option<Reason>,
        expected_version: Option<u64>,
        request: Option<String>,
    ) -> Result<Story> {
        let moved = self
            .store
            .move_story(MoveRequest {
                owner: owner.clone(),
                story: id.clone(),
                to,
                mover: Mover::User,
                actor: Actor::User(owner.clone()),
                reason,
                expected_version,
                at: self.clock.now(),
                request: request.clone(),
            })
            .await;
        match (moved, request) {
            (Err(refused @ (Error::InvalidTransition { .. } | Error::VersionMismatch { .. })), Some(request)) => {
                if self.moved_by(owner, id, &request).await? {
                    return self.store.story(owner, id).await;
                }
                Err(refused)
            }
            (moved, _) => moved,
        }
    }

    /// Whether the story's history holds a move asked for by the keyed `request`.
    pub async fn moved_by(&self, owner: &UserId, id: &StoryId, request: &str) -> Result<bool> {
        let mut page = PageRequest { limit: 100, ..PageRequest::default() };
        loop {
            let found = self.store.transitions(owner, id, &page).await?;
            if found.items.iter().any(|t| t.request.as_deref() == Some(request)) {
                return Ok(true);
            }
            match found.next {
                Some(next) => page.position = Some(next),
                None => return Ok(false),
            }
        }
    }

    /// Locks (`true`) or unlocks the plan.
    pub async fn set_lock(
        &self,
        owner: &UserId,
        id: &StoryId,
        locked: bool,
        expected_version: Option<u64>,
    ) -> Result<Story> {
        self.store.set_lock(owner, id, locked, expected_version, self.clock.now()).await
    }

    /// The story's history.
    pub async fn history(
        &self,
        owner: &UserId,
        id: &StoryId,
        page: &PageRequest,
    ) -> Result<Page<StoryStateTransition>> {
        self.store.transitions(owner, id, page).await
    }

    /// The owner's figures.
    pub async fn statistics(&self, owner: &UserId) -> Result<StoryStatistics> {
        self.store.story_statistics(owner).await
    }
}
