//! The online log's tables in a PostgreSQL store (made with the store's
//! schema, `crate::pg`): every replica over the database logs its lists
//! there and joins outcomes to the lists any replica showed; experiments
//! are created and stopped under a table lock (one running per surface
//! across processes) and published on the change feed
//! ([`crate::Change::Experiments`]) so that every replica runs the same ones.
//!
//! The SQL mirrors the SQLite log's; the differences: the user column is
//! `user_id` (`user` is reserved), `seq` is an identity column (ordered
//! across processes), impressions go in as one `INSERT … SELECT unnest(…)`
//! per group commit, an outcome is inserted `ON CONFLICT DO NOTHING` (a
//! retry that reached two replicas at once is one outcome), and users and
//! arms are `COLLATE "C"` columns: they order by bytes, as SQLite's do, so
//! reports read the experiment indexes in order with no sort.

use std::sync::MutexGuard;

use postgres::Client;

use super::{
    find_item, pack_items, record_of, unpack_items, Batch, ExperimentConflict, ExperimentData,
    ExperimentRecord, Impression, Joined, JoinedOutcome, KpiRows, LoggedImpression, Outcome,
    OutcomeKind, QueryStats, QueryTally, Shower, StoredOutcome, Tx, CLOCK_SKEW_MS, PRE_PERIOD_MS,
    WINDOW_LISTS,
};
use crate::pg::{notify, Conn, Shared};
use crate::{Change, Result, StoreError};
use aisle_experiment::ExperimentSpec;

pub(crate) struct PgLog(Shared);

impl PgLog {
    pub(crate) fn open(url: &str) -> Result<PgLog> {
        Ok(PgLog(Shared::open(url)?))
    }

    /// The connection, made again if it was lost.
    fn client(&self) -> Result<MutexGuard<'_, Conn>> {
        self.0.client()
    }

    pub(crate) fn writer_number(&self) -> Result<u64> {
        let n: i64 = self
            .client()?
            .query_one("SELECT nextval('online_writers')", &[])?
            .get(0);
        Ok(n as u64)
    }

    pub(crate) fn batch<T>(&mut self, f: impl FnOnce(&mut Batch<'_>) -> Result<T>) -> Result<T> {
        let mut c = self.client()?;
        c.batch_execute("BEGIN")?;
        let mut b = Batch(Tx::Pg(Box::new(PgBatch {
            client: &mut c,
            pending: Pending::default(),
        })));
        let out = f(&mut b).and_then(|out| {
            if let Tx::Pg(p) = &mut b.0 {
                p.flush()?;
            }
            Ok(out)
        });
        drop(b);
        match out {
            Ok(v) => {
                c.batch_execute("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                let _ = c.batch_execute("ROLLBACK");
                Err(e)
            }
        }
    }

    pub(crate) fn create_experiment(
        &mut self,
        spec: &ExperimentSpec,
        now_ms: i64,
    ) -> Result<std::result::Result<ExperimentRecord, ExperimentConflict>> {
        let mut c = self.client()?;
        let mut tx = c.transaction()?;
        // Two replicas creating at once: one waits for the other's commit.
        tx.batch_execute("LOCK TABLE experiments IN SHARE ROW EXCLUSIVE MODE")?;
        if tx
            .query_opt("SELECT 1 FROM experiments WHERE name = $1", &[&spec.name])?
            .is_some()
        {
            return Ok(Err(ExperimentConflict::Exists(spec.name.clone())));
        }
        let surface = spec.surface.name();
        if let Some(r) = tx.query_opt(
            "SELECT name FROM experiments WHERE surface = $1 AND stopped_ms IS NULL",
            &[&surface],
        )? {
            return Ok(Err(ExperimentConflict::SurfaceBusy {
                running: r.get(0),
                surface: surface.into(),
            }));
        }
        let json = serde_json::to_string(spec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        tx.execute(
            "INSERT INTO experiments(name, spec, surface, started_ms) VALUES($1, $2, $3, $4)",
            &[&spec.name, &json, &surface, &now_ms],
        )?;
        notify(&mut tx, &Change::Experiments)?;
        tx.commit()?;
        Ok(Ok(ExperimentRecord {
            spec: spec.clone(),
            started_ms: now_ms,
            stopped_ms: None,
        }))
    }

    pub(crate) fn mark_stopped(&mut self, name: &str, now_ms: i64) -> Result<bool> {
        let mut c = self.client()?;
        let mut tx = c.transaction()?;
        let n = tx.execute(
            "UPDATE experiments SET stopped_ms = $2 WHERE name = $1 AND stopped_ms IS NULL",
            &[&name, &now_ms],
        )?;
        if n == 1 {
            notify(&mut tx, &Change::Experiments)?;
        }
        tx.commit()?;
        Ok(n == 1)
    }

    pub(crate) fn experiment(&self, name: &str) -> Result<Option<ExperimentRecord>> {
        self.client()?
            .query_opt(
                "SELECT spec, started_ms, stopped_ms FROM experiments WHERE name = $1",
                &[&name],
            )?
            .map(|r| record_of(r.get(0), r.get(1), r.get(2)))
            .transpose()
    }

    pub(crate) fn experiments(&self) -> Result<Vec<ExperimentRecord>> {
        self.client()?
            .query(
                "SELECT spec, started_ms, stopped_ms FROM experiments ORDER BY started_ms, name",
                &[],
            )?
            .iter()
            .map(|r| record_of(r.get(0), r.get(1), r.get(2)))
            .collect()
    }

    pub(crate) fn experiment_data(&self, rec: &ExperimentRecord) -> Result<ExperimentData> {
        use postgres::fallible_iterator::FallibleIterator;
        let name = &rec.spec.name;
        let mut c = self.client()?;
        let mut cells = super::Cells::new(rec);
        {
            let mut rows = c.query_raw(
                "SELECT user_id, arm, ts_ms FROM impressions
             WHERE experiment = $1 AND user_id IS NOT NULL
             ORDER BY user_id, arm, ts_ms",
                [name],
            )?;
            while let Some(r) = rows.next()? {
                let arm: Option<&str> = r.get(1);
                cells.impression(
                    r.get::<_, &str>(0).as_bytes(),
                    arm.map(str::as_bytes),
                    r.get(2),
                );
            }
        }
        cells.impressions_done();
        {
            let mut rows = c.query_raw(
                "SELECT user_id, arm, ts_ms, kind, team, value
             FROM outcomes WHERE experiment = $1
             ORDER BY user_id, arm, ts_ms",
                [name],
            )?;
            while let Some(r) = rows.next()? {
                cells.outcome(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
            }
        }
        let start = rec.started_ms;
        for r in c.query(
            "SELECT user_id, kind, COUNT(*), COALESCE(SUM(value), 0) FROM outcomes
             WHERE ts_ms >= $1 AND ts_ms < $2 GROUP BY user_id, kind",
            &[&(start - PRE_PERIOD_MS), &start],
        )? {
            cells.pre(r.get(0), r.get(1), r.get(2), r.get(3));
        }
        Ok(cells.finish())
    }

    pub(crate) fn kpis(&self, from_ms: i64, to_ms: i64, surface: Option<&str>) -> Result<KpiRows> {
        let mut c = self.client()?;
        let s = surface.unwrap_or("");
        let on = "($3 = '' OR surface = $3)";
        let r = c.query_one(
            &format!(
                "SELECT COUNT(*), COUNT(DISTINCT user_id),
                    COUNT(*) FILTER (WHERE surface = 'search' AND n = 0),
                    COUNT(*) FILTER (WHERE surface = 'search')
                 FROM impressions WHERE ts_ms >= $1 AND ts_ms < $2 AND {on}"
            ),
            &[&from_ms, &to_ms, &s],
        )?;
        let mut k = KpiRows {
            lists: [r.get(0), r.get(1), r.get(2), r.get(3)],
            ..KpiRows::default()
        };
        for r in c.query(
            "SELECT kind, COUNT(*), COALESCE(SUM(value), 0) FROM outcomes
             WHERE ts_ms >= $1 AND ts_ms < $2 AND rid IS NOT NULL AND ($3 = '' OR surface = $3)
             GROUP BY kind",
            &[&from_ms, &to_ms, &s],
        )? {
            k.by_kind.push((r.get(0), r.get(1), r.get(2)));
        }
        let r = c.query_one(
            "SELECT COUNT(*) FILTER (WHERE rid IS NULL),
                    COALESCE(SUM(value) FILTER (WHERE kind = 3), 0)
             FROM outcomes WHERE ts_ms >= $1 AND ts_ms < $2",
            &[&from_ms, &to_ms],
        )?;
        k.unattributed = (r.get(0), r.get(1));
        for r in c.query(
            &format!(
                "SELECT n, COUNT(*) FROM impressions
                 WHERE ts_ms >= $1 AND ts_ms < $2 AND {on} GROUP BY n"
            ),
            &[&from_ms, &to_ms, &s],
        )? {
            k.shown.push((r.get(0), r.get(1)));
        }
        for r in c.query(
            "SELECT pos, COUNT(*) FROM outcomes
             WHERE kind = 1 AND pos IS NOT NULL AND rid IS NOT NULL AND ts_ms >= $1 AND ts_ms < $2
               AND ($3 = '' OR surface = $3)
             GROUP BY pos",
            &[&from_ms, &to_ms, &s],
        )? {
            k.clicks.push((r.get(0), r.get(1)));
        }
        Ok(k)
    }

    pub(crate) fn search_queries(
        &self,
        from_ms: i64,
        to_ms: i64,
        limit: usize,
    ) -> Result<QueryStats> {
        let mut tally = QueryTally::default();
        for r in self.client()?.query(
            "SELECT lower(trim(COALESCE(i.query, ''))), i.n,
                    (SELECT COUNT(*) FROM outcomes o WHERE o.rid = i.rid AND o.kind = 1)
             FROM impressions i
             WHERE i.surface = 'search' AND i.ts_ms >= $1 AND i.ts_ms < $2",
            &[&from_ms, &to_ms],
        )? {
            tally.add(r.get(0), r.get(1), r.get(2));
        }
        Ok(tally.finish(from_ms, to_ms, limit))
    }

    pub(crate) fn erase_user(&mut self, user: &str) -> Result<u64> {
        let mut c = self.client()?;
        let mut tx = c.transaction()?;
        let n = tx.execute("DELETE FROM impressions WHERE user_id = $1", &[&user])?;
        tx.execute("DELETE FROM outcomes WHERE user_id = $1", &[&user])?;
        tx.commit()?;
        // The dead rows' space is made reusable now rather than at autovacuum.
        c.batch_execute("VACUUM impressions, outcomes")?;
        Ok(n)
    }

    pub(crate) fn prune(&mut self, before_ms: i64) -> Result<u64> {
        let mut c = self.client()?;
        let mut tx = c.transaction()?;
        let n = tx.execute("DELETE FROM impressions WHERE ts_ms < $1", &[&before_ms])?;
        tx.execute("DELETE FROM outcomes WHERE ts_ms < $1", &[&before_ms])?;
        tx.commit()?;
        Ok(n)
    }

    pub(crate) fn impression(&self, rid: u64) -> Result<Option<Impression>> {
        Ok(self
            .client()?
            .query_opt(
                &format!("SELECT {IMPRESSION_COLUMNS} FROM impressions WHERE rid = $1"),
                &[&(rid as i64)],
            )?
            .map(|r| impression_row(&r).1))
    }

    pub(crate) fn outcomes_of(&self, rid: u64) -> Result<Vec<JoinedOutcome>> {
        Ok(self
            .client()?
            .query(
                "SELECT kind, item, pos, value FROM outcomes WHERE rid = $1 ORDER BY ts_ms, ekey",
                &[&(rid as i64)],
            )?
            .iter()
            .map(|r| {
                (
                    OutcomeKind::of(r.get(0)).unwrap_or(OutcomeKind::Click),
                    r.get(1),
                    r.get::<_, Option<i64>>(2).map(|p| p as u32),
                    r.get(3),
                )
            })
            .collect())
    }

    pub(crate) fn logged_lists(&self) -> Result<Vec<LoggedImpression>> {
        let mut c = self.client()?;
        let mut out: Vec<LoggedImpression> = Vec::new();
        for r in c.query(
            "SELECT rid, ts_ms, user_id, n, items, model, events_seq FROM impressions
             WHERE surface = 'recommendations' AND experiment IS NULL AND user_id IS NOT NULL
             ORDER BY ts_ms, seq",
            &[],
        )? {
            out.extend(LoggedImpression::of_row(
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get::<_, Option<&[u8]>>(4).unwrap_or(&[]),
                r.get(5),
                r.get(6),
            ));
        }
        let clicks: Vec<(i64, i64)> = c
            .query(
                "SELECT rid, pos FROM outcomes WHERE kind = $1 AND rid IS NOT NULL AND pos IS NOT NULL",
                &[&(OutcomeKind::Click as i64)],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        LoggedImpression::add_clicks(&mut out, &clicks);
        Ok(out)
    }

    pub(crate) fn impressions_after(
        &self,
        seq: i64,
        limit: usize,
    ) -> Result<Vec<(i64, Impression)>> {
        Ok(self
            .client()?
            .query(
                &format!(
                    "SELECT {IMPRESSION_COLUMNS} FROM impressions WHERE seq > $1 ORDER BY seq LIMIT $2"
                ),
                &[&seq, &(limit as i64)],
            )?
            .iter()
            .map(impression_row)
            .collect())
    }

    pub(crate) fn outcomes_after(
        &self,
        key: Option<i64>,
        limit: usize,
    ) -> Result<Vec<StoredOutcome>> {
        Ok(self
            .client()?
            .query(
                "SELECT ekey, ts_ms, user_id, item, kind, value, quantity, rid, pos, how, surface,
                        experiment, arm, team
                 FROM outcomes WHERE $1::BIGINT IS NULL OR ekey > $1 ORDER BY ekey LIMIT $2",
                &[&key, &(limit as i64)],
            )?
            .iter()
            .map(|r| StoredOutcome {
                key: r.get::<_, i64>(0) as u64,
                ts_ms: r.get(1),
                user: r.get(2),
                item: r.get(3),
                kind: r.get(4),
                value: r.get(5),
                quantity: r.get(6),
                rid: r.get(7),
                pos: r.get(8),
                how: r.get(9),
                surface: r.get(10),
                experiment: r.get(11),
                arm: r.get(12),
                team: r.get(13),
            })
            .collect())
    }

    pub(crate) fn counts(&self) -> Result<(u64, u64, u64)> {
        let r = self.client()?.query_one(
            "SELECT (SELECT COUNT(*) FROM impressions),
                    (SELECT COALESCE(SUM(n), 0)::BIGINT FROM impressions),
                    (SELECT COUNT(*) FROM outcomes)",
            &[],
        )?;
        Ok((
            r.get::<_, i64>(0) as u64,
            r.get::<_, i64>(1) as u64,
            r.get::<_, i64>(2) as u64,
        ))
    }
}

/// [`super::IMPRESSION_COLUMNS`] with the user column as PostgreSQL names it.
const IMPRESSION_COLUMNS: &str =
    "seq, rid, ts_ms, user_id, session, surface, experiment, arm, model, query, events_seq, items";

/// A row of [`IMPRESSION_COLUMNS`]: its `seq` and the impression.
fn impression_row(r: &postgres::Row) -> (i64, Impression) {
    (
        r.get(0),
        Impression {
            rid: r.get::<_, i64>(1) as u64,
            ts_ms: r.get(2),
            user: r.get(3),
            session: r.get(4),
            surface: r.get(5),
            experiment: r.get(6),
            arm: r.get(7),
            model: r.get(8),
            query: r.get(9),
            events_seq: r.get(10),
            items: unpack_items(r.get::<_, Option<&[u8]>>(11).unwrap_or(&[])),
        },
    )
}

/// A group commit in progress over PostgreSQL: impressions wait in columns
/// and go in with one statement (before any read that may need them, and
/// at the end).
pub(crate) struct PgBatch<'t> {
    client: &'t mut Client,
    pending: Pending,
}

/// Impressions by column (the arrays `unnest` reads).
#[derive(Default)]
struct Pending {
    rid: Vec<i64>,
    ts_ms: Vec<i64>,
    user: Vec<Option<String>>,
    session: Vec<Option<String>>,
    surface: Vec<String>,
    experiment: Vec<Option<String>>,
    arm: Vec<Option<String>>,
    model: Vec<String>,
    query: Vec<Option<String>>,
    n: Vec<i64>,
    events_seq: Vec<Option<i64>>,
    items: Vec<Vec<u8>>,
}

impl PgBatch<'_> {
    pub(crate) fn push(&mut self, i: &Impression) {
        let p = &mut self.pending;
        p.rid.push(i.rid as i64);
        p.ts_ms.push(i.ts_ms);
        p.user.push(i.user.clone());
        p.session.push(i.session.clone());
        p.surface.push(i.surface.clone());
        p.experiment.push(i.experiment.clone());
        p.arm.push(i.arm.clone());
        p.model.push(i.model.clone());
        p.query.push(i.query.clone());
        p.n.push(i.items.len() as i64);
        p.events_seq.push(i.events_seq);
        p.items.push(pack_items(&i.items));
    }

    /// Writes the impressions pushed so far (in their order: `seq` follows it).
    pub(crate) fn flush(&mut self) -> Result<()> {
        if self.pending.rid.is_empty() {
            return Ok(());
        }
        let p = std::mem::take(&mut self.pending);
        self.client.execute(
            "INSERT INTO impressions(rid, ts_ms, user_id, session, surface, experiment, arm, model,
                                     query, n, events_seq, items)
             SELECT * FROM unnest($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::TEXT[],
                                  $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::BIGINT[],
                                  $11::BIGINT[], $12::BYTEA[])
             ON CONFLICT (rid) DO NOTHING",
            &[
                &p.rid,
                &p.ts_ms,
                &p.user,
                &p.session,
                &p.surface,
                &p.experiment,
                &p.arm,
                &p.model,
                &p.query,
                &p.n,
                &p.events_seq,
                &p.items,
            ],
        )?;
        Ok(())
    }

    pub(crate) fn seen(&mut self, key: u64) -> Result<bool> {
        Ok(self
            .client
            .query_opt("SELECT 1 FROM outcomes WHERE ekey = $1", &[&(key as i64)])?
            .is_some())
    }

    pub(crate) fn joined(&mut self, rid: u64) -> Result<Option<Joined>> {
        self.flush()?;
        Ok(self
            .client
            .query_opt(
                "SELECT surface, experiment, arm, items FROM impressions WHERE rid = $1",
                &[&(rid as i64)],
            )?
            .map(|r| Joined {
                rid,
                surface: r.get(0),
                experiment: r.get(1),
                arm: r.get(2),
                items: r.get::<_, Option<Vec<u8>>>(3).unwrap_or_default(),
            }))
    }

    pub(crate) fn latest_showing(&mut self, o: &Outcome, window_ms: i64) -> Result<Option<Shower>> {
        use postgres::fallible_iterator::FallibleIterator;
        self.flush()?;
        let mut rows = self.client.query_raw(
            "SELECT rid, items, surface, experiment, arm FROM impressions
             WHERE user_id = $1 AND ts_ms >= $2 AND ts_ms <= $3
             ORDER BY ts_ms DESC, seq DESC LIMIT $4",
            [
                &o.user as &(dyn postgres::types::ToSql + Sync),
                &(o.ts_ms - window_ms),
                &(o.ts_ms + CLOCK_SKEW_MS),
                &WINDOW_LISTS,
            ],
        )?;
        while let Some(r) = rows.next()? {
            let items: &[u8] = r.get::<_, Option<&[u8]>>(1).unwrap_or(&[]);
            if let Some((pos, team)) = find_item(items, &o.item) {
                let j = Joined {
                    rid: r.get::<_, i64>(0) as u64,
                    surface: r.get(2),
                    experiment: r.get(3),
                    arm: r.get(4),
                    items: Vec::new(),
                };
                return Ok(Some((j, pos, team)));
            }
        }
        Ok(None)
    }

    /// Stores an outcome; false when one of its event key is there already.
    pub(crate) fn insert_outcome(&mut self, row: &StoredOutcome) -> Result<bool> {
        self.flush()?;
        let n = self.client.execute(
            "INSERT INTO outcomes(ekey, ts_ms, user_id, item, kind, value, quantity, rid, pos, how,
                                  surface, experiment, arm, team)
             VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT (ekey) DO NOTHING",
            &[
                &(row.key as i64),
                &row.ts_ms,
                &row.user,
                &row.item,
                &row.kind,
                &row.value,
                &row.quantity,
                &row.rid,
                &row.pos,
                &row.how,
                &row.surface,
                &row.experiment,
                &row.arm,
                &row.team,
            ],
        )?;
        Ok(n == 1)
    }

    pub(crate) fn put_experiment(
        &mut self,
        name: &str,
        json: &str,
        surface: &str,
        rec: &ExperimentRecord,
    ) -> Result<()> {
        self.client.execute(
            "INSERT INTO experiments(name, spec, surface, started_ms, stopped_ms)
             VALUES($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            &[&name, &json, &surface, &rec.started_ms, &rec.stopped_ms],
        )?;
        Ok(())
    }
}
