//! Stories, their moves, locks and history: each change one conditional write or one
//! transaction with its history record.

use super::*;

#[async_trait]
impl StoryStore for DynamoStore {
    async fn create_story(&self, story: &Story) -> Result<()> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(story_item(story, 0)?))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Err(Error::Conflict { detail: "A story with this id exists.".into(), current_status: None })
            }
            Err(e) => Err(sdk(e)),
        }
    }

    async fn story(&self, owner: &UserId, id: &StoryId) -> Result<Story> {
        Ok(self.owned(owner, id).await?.story)
    }

    async fn list_stories(&self, owner: &UserId, filter: &StoryFilter, page: &PageRequest) -> Result<Page<Story>> {
        let (found, _) = self.owner_stories(owner, Some(page), filter).await?;
        Ok(Page::from_scan(found, page))
    }

    async fn edit_story(
        &self,
        owner: &UserId,
        id: &StoryId,
        edit: StoryEdit,
        expected_version: Option<u64>,
        at: DateTime<Utc>,
    ) -> Result<Story> {
        let mut known: Option<StoryRecord> = None;
        for attempt in 0..ATTEMPTS {
            back_off(attempt).await;
            let record = match known.take() {
                Some(record) if &record.story.owner == owner => record,
                Some(_) => return Err(Error::NotFound),
                None => self.owned(owner, id).await?,
            };
            record.story.check_version(expected_version)?;
            let next = record.story.edited(edit.clone(), at)?;
            match self.write_story(&record, &next, None).await? {
                Written::Done => return Ok(next),
                Written::Raced(old) => known = old.map(|b| *b),
            }
        }
        Err(busy())
    }

    async fn delete_story(&self, owner: &UserId, id: &StoryId, expected_version: Option<u64>) -> Result<()> {
        for attempt in 0..ATTEMPTS {
            back_off(attempt).await;
            let aggregate = self.aggregate(owner, id).await?;
            let story = &aggregate.record.story;
            story.check_version(expected_version)?;
            story.ensure_deletable()?;
            let (condition, names, values) = unchanged_since(&aggregate.record);
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key(story_pk(id), "STORY".into())))
                .condition_expression(condition)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .build()
                .map_err(internal)?;
            let mut children: Vec<String> = aggregate.scenes.iter().map(|s| format!("SCENE#{}", s.id)).collect();
            children.extend(aggregate.prompts.iter().map(prompt_sk));
            children.extend(aggregate.other_keys.iter().cloned());
            // The story goes in the first transaction, so once it commits nobody can reach the
            // rest; what does not fit is swept right after (unreachable, then gone).
            let first = children.len().min(MAX_TRANSACTION_ITEMS - 1);
            let mut items = vec![TransactWriteItem::builder().delete(delete).build()];
            for sk in &children[..first] {
                items.push(self.delete_plain(story_pk(id), sk.clone())?);
            }
            match self.transact(items).await? {
                Written::Raced(_) => continue,
                Written::Done => {
                    for chunk in children[first..].chunks(MAX_TRANSACTION_ITEMS) {
                        let items = chunk
                            .iter()
                            .map(|sk| self.delete_plain(story_pk(id), sk.clone()))
                            .collect::<Result<Vec<_>>>()?;
                        if let Written::Raced(_) = self.transact(items).await? {
                            tracing::warn!(story = %id, "leftover items of a deleted story changed while being swept");
                        }
                    }
                    return Ok(());
                }
            }
        }
        Err(busy())
    }

    async fn move_story(&self, request: MoveRequest) -> Result<Story> {
        let needs_plan =
            |record: &StoryRecord| move_rule(record.story.status, request.to).is_some_and(|r| r.requires_complete_plan);
        let mut known: Option<StoryRecord> = None;
        for attempt in 0..ATTEMPTS {
            back_off(attempt).await;
            // A move that needs the plan reads the story and its plan in one Query; others one GetItem.
            let (record, gaps) = if request.to == crate::domain::state_machine::StoryStatus::Planned {
                let aggregate = self.aggregate(&request.owner, &request.story).await?;
                let gaps = if needs_plan(&aggregate.record) {
                    plan_gaps(&aggregate.record.story, &aggregate.scenes, &aggregate.prompts)
                } else {
                    Vec::new()
                };
                (aggregate.record, gaps)
            } else {
                let record = match known.take() {
                    Some(record) if record.story.owner == request.owner => record,
                    Some(_) => return Err(Error::NotFound),
                    None => self.owned(&request.owner, &request.story).await?,
                };
                (record, Vec::new())
            };
            let (next, history) = request.applied(&record.story, || gaps)?;
            match self.write_story(&record, &next, Some(&history)).await? {
                Written::Done => return Ok(next),
                // The loser of a race decides again on the story as the winner left it.
                Written::Raced(old) => known = old.map(|b| *b),
            }
        }
        Err(busy())
    }

    /// One conditional UpdateItem: the lock changes only if the story is the owner's, in a status
    /// that allows it, not already so (and at the `If-Match` version). When the condition fails, the
    /// old item comes back with the failure and says why, so no second read is needed.
    async fn set_lock(
        &self,
        owner: &UserId,
        id: &StoryId,
        locked: bool,
        expected_version: Option<u64>,
        at: DateTime<Utc>,
    ) -> Result<Story> {
        for attempt in 0..ATTEMPTS {
            back_off(attempt).await;
            match self.try_set_lock(owner, id, locked, expected_version, at).await? {
                Some(story) => return Ok(story),
                None => continue,
            }
        }
        Err(busy())
    }

    async fn transitions(
        &self,
        owner: &UserId,
        id: &StoryId,
        page: &PageRequest,
    ) -> Result<Page<StoryStateTransition>> {
        self.owned(owner, id).await?;
        let start = page.position.as_ref().map(|p| key(story_pk(id), format!("TRANSITION#{p}")));
        let mut found = Vec::new();
        let mut start = start;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk AND begins_with(SK, :t)")
                .expression_attribute_values(":pk", s(story_pk(id)))
                .expression_attribute_values(":t", s("TRANSITION#"))
                .scan_index_forward(!page.scan_descending())
                .limit((page.limit + 1) as i32)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(sdk)?;
            for item in out.items.unwrap_or_default() {
                let record: StoryStateTransition = from_item(item)?;
                found.push((format!("{:020}", record.sequence), record));
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() && found.len() <= page.limit => start = Some(k),
                _ => break,
            }
        }
        found.truncate(page.limit + 1);
        Ok(Page::from_scan(found, page))
    }

    async fn rendering_stories(&self) -> Result<Vec<Story>> {
        self.under_way(RENDERING_STORIES).await
    }

    async fn story_statistics(&self, owner: &UserId) -> Result<StoryStatistics> {
        let (all, _) = self.owner_stories(owner, None, &StoryFilter::default()).await?;
        Ok(StoryStatistics::from_stories(all.iter().map(|(_, s)| s)))
    }
}

impl DynamoStore {
    /// One attempt of `set_lock`; `None` when it lost a race and should be decided again.
    async fn try_set_lock(
        &self,
        owner: &UserId,
        id: &StoryId,
        locked: bool,
        expected_version: Option<u64>,
        at: DateTime<Utc>,
    ) -> Result<Option<Story>> {
        let now = serde_json::to_value(at).map_err(internal)?.as_str().unwrap_or_default().to_owned();
        let (statuses, status_values) = lock_change_statuses();
        let mut condition = format!("#owner = :owner AND #status IN ({statuses}) AND #is_locked = :was");
        if expected_version.is_some() {
            condition.push_str(" AND #version = :expected");
        }
        let update = if locked {
            "SET #is_locked = :locked, #locked_at = :now, #updated_at = :now, #version = #version + :one"
        } else {
            "SET #is_locked = :locked, #updated_at = :now, #version = #version + :one REMOVE #locked_at"
        };
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(story_pk(id), "STORY".into())))
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#is_locked", "is_locked")
            .expression_attribute_names("#locked_at", "locked_at")
            .expression_attribute_names("#updated_at", "updated_at")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":owner", s(owner.as_str()))
            .expression_attribute_values(":was", AttributeValue::Bool(!locked))
            .expression_attribute_values(":locked", AttributeValue::Bool(locked))
            .expression_attribute_values(":now", s(now))
            .expression_attribute_values(":one", n(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if let Some(v) = expected_version {
            request = request.expression_attribute_values(":expected", n(v));
        }
        for (name, value) in status_values {
            request = request.expression_attribute_values(name, value);
        }
        match request.send().await {
            Ok(out) => Ok(Some(StoryRecord::from_item(out.attributes.unwrap_or_default())?.story)),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c)) => {
                    // The old item tells which rule refused; the same domain rules decide the answer.
                    let old = match c.item() {
                        Some(item) if !item.is_empty() => StoryRecord::from_item(item.clone())?.story,
                        _ => return Err(Error::NotFound),
                    };
                    if &old.owner != owner {
                        return Err(Error::NotFound);
                    }
                    old.check_version(expected_version)?;
                    match old.with_lock(locked, at)? {
                        // Already so: nothing to write; answer with the story as it is.
                        None => Ok(Some(old)),
                        // The rules allow it, so the story changed in between: decide again.
                        Some(_) => Ok(None),
                    }
                }
                _ => Err(sdk(e)),
            },
        }
    }
}

/// The statuses in which `lock`/`unlock` may write, as a condition's `IN (…)` list and its values:
/// derived from the domain's rule (`allows_lock_changes`), never written out a second time.
fn lock_change_statuses() -> (String, Item) {
    let allowed: Vec<StoryStatus> = StoryStatus::ALL.into_iter().filter(|s| s.allows_lock_changes()).collect();
    let names: Vec<String> = (0..allowed.len()).map(|i| format!(":lockable{i}")).collect();
    let values = names.iter().zip(&allowed).map(|(name, status)| (name.clone(), s(status.as_str()))).collect();
    (names.join(", "), values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_condition_admits_exactly_the_statuses_the_domain_allows_lock_changes_in() {
        let (list, values) = lock_change_statuses();
        let admitted: Vec<StoryStatus> =
            list.split(", ").map(|name| StoryStatus::parse(values[name].as_s().unwrap()).unwrap()).collect();
        for status in StoryStatus::ALL {
            assert_eq!(admitted.contains(&status), status.allows_lock_changes(), "{status}");
        }
    }
}
