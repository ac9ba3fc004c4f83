//! Jobs: claims, renders started in one transaction with the story's move, and job writes
//! conditioned on the version read.

use super::*;
use crate::domain::usage;

fn job_key(story: &StoryId, id: &JobId) -> Item {
    key(story_pk(story), format!("JOB#{id}"))
}

/// A job lives in its story's partition (so a story's Query and delete reach it), is listed per
/// owner on GSI1 under `JOBS#<owner>` (apart from the owner's stories) and found by id on GSI2.
fn job_item(job: &Job) -> Result<Item> {
    let mut item = to_item(job)?;
    item.insert("PK".into(), s(story_pk(&job.story)));
    item.insert("SK".into(), s(format!("JOB#{}", job.id)));
    item.insert("GSI1PK".into(), s(format!("JOBS#{}", job.owner)));
    item.insert("GSI1SK".into(), s(format!("JOB#{}", job.id)));
    item.insert("GSI2PK".into(), s(format!("JOB#{}", job.id)));
    if !job.status.is_terminal() {
        // Sparse: only until it finishes, so the sweep reads just the work under way.
        item.insert("GSI4PK".into(), s(UNFINISHED_JOBS));
        item.insert("GSI4SK".into(), s(job.id.to_string()));
    }
    Ok(item)
}

impl DynamoStore {
    /// A Put of `job`: new (`version` 1, must not exist) or conditioned on the version before.
    fn job_put(&self, job: &Job) -> Result<TransactWriteItem> {
        let mut put = Put::builder().table_name(&self.table).set_item(Some(job_item(job)?));
        put = if job.version <= 1 {
            put.condition_expression("attribute_not_exists(PK)")
        } else {
            put.condition_expression("#version = :version")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":version", n(job.version - 1))
        };
        Ok(TransactWriteItem::builder().put(put.build().map_err(internal)?).build())
    }

    /// Every job item of one story (`SK` starting with `JOB#`), or of one owner on GSI1.
    async fn query_jobs(&self, story: Option<&StoryId>, owner: Option<&UserId>) -> Result<Vec<Job>> {
        let query = self.client.query().table_name(&self.table);
        let query = match (story, owner) {
            (Some(story), _) => query
                .key_condition_expression("PK = :pk AND begins_with(SK, :job)")
                .expression_attribute_values(":pk", s(story_pk(story)))
                .expression_attribute_values(":job", s("JOB#"))
                .consistent_read(true),
            (None, Some(owner)) => query
                .index_name(GSI1)
                .key_condition_expression("GSI1PK = :owner")
                .expression_attribute_values(":owner", s(format!("JOBS#{owner}"))),
            (None, None) => return Ok(Vec::new()),
        };
        self.query_all(query).await
    }
}

#[async_trait]
impl JobStore for DynamoStore {
    async fn create_job(&self, job: &Job) -> Result<()> {
        let mut jobs = [job.clone()];
        let changes = usage::advance(&mut jobs);
        if !changes.is_empty() {
            // A paid job: the job and its reservation in one transaction.
            self.refuse_impossible(&changes).await?;
            let mut items = vec![self.job_put(&jobs[0])?];
            for change in &changes {
                items.push(self.usage_update(change)?);
            }
            return match self.transact_counting(items, &changes).await? {
                Written::Done => Ok(()),
                Written::Raced(_) => {
                    Err(Error::Conflict { detail: "A job with this id exists.".into(), current_status: None })
                }
            };
        }
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(job_item(job)?))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(_)) => {
                    Err(Error::Conflict { detail: "A job with this id exists.".into(), current_status: None })
                }
                _ => Err(sdk(e)),
            },
        }
    }

    async fn story_job(&self, story: &StoryId, id: &JobId) -> Result<Job> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(job_key(story, id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk)?;
        from_item(out.item.ok_or(Error::NotFound)?)
    }

    async fn story_jobs(&self, story: &StoryId) -> Result<Vec<Job>> {
        self.query_jobs(Some(story), None).await
    }

    /// GSI2 finds the job's story, then one consistent GetItem reads it (the index is eventually
    /// consistent; the item is not).
    async fn job(&self, owner: &UserId, id: &JobId) -> Result<Job> {
        let story = self.home_of(format!("JOB#{id}")).await?;
        let job = self.story_job(&story, id).await?;
        if &job.owner != owner {
            return Err(Error::NotFound);
        }
        Ok(job)
    }

    async fn list_jobs(&self, owner: &UserId, filter: &JobFilter, page: &PageRequest) -> Result<Page<Job>> {
        let listed: Vec<(String, Job)> = self
            .query_jobs(None, Some(owner))
            .await?
            .into_iter()
            .filter(|j| filter.admits(j))
            .map(|j| (j.id.to_string(), j))
            .collect();
        Ok(Page::from_sorted(listed, page))
    }

    async fn unfinished_jobs(&self) -> Result<Vec<Job>> {
        self.under_way(UNFINISHED_JOBS).await
    }

    async fn owner_jobs(&self, owner: &UserId) -> Result<Vec<Job>> {
        self.query_jobs(None, Some(owner)).await
    }

    async fn start_render(
        &self,
        request: MoveRequest,
        build: std::sync::Arc<RenderBuilder>,
    ) -> Result<(Story, Vec<Job>)> {
        for attempt in 0..ATTEMPTS {
            back_off(attempt).await;
            let aggregate = self.aggregate(&request.owner, &request.story).await?;
            let record = &aggregate.record;
            let (next, history) = request.render_start(&record.story)?;
            let plan = StoryPlan {
                story: record.story.clone(),
                scenes: aggregate.scenes.clone(),
                prompts: aggregate.prompts.clone(),
            };
            let mut jobs = build(&plan)?;
            // The estimate is reserved in the same transaction, or nothing is written.
            let changes = usage::advance(&mut jobs);
            self.refuse_impossible(&changes).await?;
            // Conditioned on the story and its plan as read: the jobs snapshot exactly this plan.
            let mut items = vec![self.put_story_item(record, &next, record.plan_version)?];
            items.extend(self.move_items(&next, &history)?);
            for job in &jobs {
                items.push(self.job_put(job)?);
            }
            for change in &changes {
                items.push(self.usage_update(change)?);
            }
            match self.transact_counting(items, &changes).await? {
                Written::Done => return Ok((next, jobs)),
                Written::Raced(_) => continue,
            }
        }
        Err(busy())
    }

    async fn commit_jobs(&self, mut jobs: Vec<Job>, effect: Option<StoryEffect>) -> Result<Committed> {
        // Reservations of restarted jobs and settlements of ended ones, in the same transaction.
        let changes = usage::advance(&mut jobs);
        self.refuse_impossible(&changes).await?;
        let mut items = Vec::with_capacity(jobs.len() + changes.len() + 2);
        let mut moved = None;
        if let Some(effect) = &effect {
            let record = self.owned(&effect.owner, &effect.story).await?;
            if let Some((next, history)) = effect.apply(&record.story)? {
                items.push(self.put_story_item(&record, &next, record.plan_version)?);
                items.extend(self.move_items(&next, &history)?);
                moved = Some(next);
            }
        }
        for job in &jobs {
            items.push(self.job_put(job)?);
        }
        items.extend(self.job_event_puts(&jobs, Utc::now())?);
        for change in &changes {
            items.push(self.usage_update(change)?);
        }
        match items.len() {
            0 => Ok(Committed::Done(None)),
            _ => match self.transact_counting(items, &changes).await? {
                Written::Done => Ok(Committed::Done(moved.map(Box::new))),
                Written::Raced(_) => Ok(Committed::Raced),
            },
        }
    }

    /// GetItem, the job's rules, then a PutItem conditioned on the version read: of concurrent
    /// claims exactly one writes; a loser is answered from the item its failed condition returns.
    async fn claim_job(
        &self,
        story: &StoryId,
        id: &JobId,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<std::result::Result<Job, JobRefusal>> {
        let mut current = self.story_job(story, id).await?;
        for attempt in 0..ATTEMPTS {
            back_off(attempt).await;
            let mut next = match current.claimed(now, lease) {
                Ok(next) => next,
                Err(refusal) => return Ok(Err(refusal)),
            };
            next.version = current.version + 1;
            let events = self.job_event_puts(std::slice::from_ref(&next), now)?;
            if !events.is_empty() {
                // The claim and its event in one transaction.
                let mut items = vec![self.job_put(&next)?];
                items.extend(events);
                match self.transact(items).await? {
                    Written::Done => return Ok(Ok(next)),
                    Written::Raced(_) => {
                        current = self.story_job(story, id).await?;
                        continue;
                    }
                }
            }
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(job_item(&next)?))
                .condition_expression("#version = :version")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":version", n(current.version))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            match result {
                Ok(_) => return Ok(Ok(next)),
                Err(e) => match e.as_service_error() {
                    Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c)) => {
                        current = match c.item() {
                            Some(item) if !item.is_empty() => from_item(item.clone())?,
                            _ => self.story_job(story, id).await?,
                        };
                    }
                    _ => return Err(sdk(e)),
                },
            }
        }
        Err(busy())
    }
}
