//! MAM queries (issue 4) against an in-memory model: every filter and paging form, on
//! archives with equal timestamps and clocks that go back, 1-1 and room archives.

use proptest::prelude::*;

use crate::util::*;
use jidstore::ext::mam::{Direction, MucMessage, Page, PageFrom, PmMessage, Query};
use jidstore::{BareJid, Error, Jid, Store, Timestamp};

/// A message as the model sees it: id, archive time, and what `with` is compared against.
#[derive(Clone, Debug)]
struct Model {
    id: String,
    at: i64,
    /// 1-1: the other party (full JID). Rooms: `room/nick`.
    with: String,
    /// Rooms only: the sender's real bare JID.
    sender: Option<String>,
}

const PEERS: &[&str] = &["bob@x/a", "bob@x/b", "carol@x/a", "bob@x", "bobby@x/a"];
const NICKS: &[(&str, &str)] = &[
    ("ann", "ann@x"),
    ("bo", "bob@x"),
    ("bob", "bob@x"),
    ("bo b", "carol@x"),
];
const ROOM: &str = "room@muc.x";

#[derive(Clone, Debug)]
struct Msg {
    secs: i64,
    who: usize,
    incoming: bool,
    imported: bool,
    bulk: bool,
}

fn msgs() -> impl Strategy<Value = Vec<Msg>> {
    proptest::collection::vec(
        (
            0i64..8,
            0usize..5,
            any::<bool>(),
            any::<u8>(),
            // Mostly bulk, so runs are long enough to fill record blocks (8) and
            // sometimes `with` blocks (32), with live appends in between.
            proptest::bool::weighted(0.85),
        )
            .prop_map(|(secs, who, incoming, imp, bulk)| Msg {
                secs,
                who,
                incoming,
                imported: imp % 5 == 0,
                bulk,
            }),
        0..80,
    )
}

/// An id reference: an index into the archive (taken modulo its length) or an unknown id.
#[derive(Clone, Debug)]
enum IdRef {
    At(usize),
    Unknown,
}

fn id_ref() -> impl Strategy<Value = IdRef> {
    prop_oneof![9 => any::<usize>().prop_map(IdRef::At), 1 => Just(IdRef::Unknown)]
}

#[derive(Clone, Debug)]
struct Q {
    with: Option<usize>,
    start: Option<i64>,
    end: Option<i64>,
    after_id: Option<IdRef>,
    before_id: Option<IdRef>,
    ids: Option<Vec<IdRef>>,
    max: Option<usize>,
    page: u8,
    page_id: IdRef,
    flip: bool,
}

fn queries() -> impl Strategy<Value = Q> {
    (
        proptest::option::of(0usize..8),
        proptest::option::of(-1i64..9),
        proptest::option::of(-1i64..9),
        proptest::option::weighted(0.2, id_ref()),
        proptest::option::weighted(0.2, id_ref()),
        proptest::option::weighted(0.15, proptest::collection::vec(id_ref(), 0..5)),
        proptest::option::of(0usize..6),
        0u8..4,
        id_ref(),
        any::<bool>(),
    )
        .prop_map(
            |(with, start, end, after_id, before_id, ids, max, page, page_id, flip)| Q {
                with,
                start,
                end,
                after_id,
                before_id,
                ids,
                max,
                page,
                page_id,
                flip,
            },
        )
}

const UNKNOWN: &str = "0000000000000001ffffffffffffffff";

fn resolve(model: &[Model], r: &IdRef) -> String {
    match r {
        IdRef::At(i) if !model.is_empty() => model[i % model.len()].id.clone(),
        _ => UNKNOWN.to_owned(),
    }
}

fn build_query(model: &[Model], q: &Q, with: &[String]) -> Query {
    Query {
        with: q.with.map(|w| Jid::parse(&with[w % with.len()]).unwrap()),
        start: q.start.map(Timestamp::from_secs),
        end: q.end.map(Timestamp::from_secs),
        after_id: q.after_id.as_ref().map(|r| resolve(model, r)),
        before_id: q.before_id.as_ref().map(|r| resolve(model, r)),
        ids: q
            .ids
            .as_ref()
            .map(|v| v.iter().map(|r| resolve(model, r)).collect()),
        max: q.max,
        page: match q.page {
            0 => PageFrom::First,
            1 => PageFrom::After(resolve(model, &q.page_id)),
            2 => PageFrom::Before(None),
            _ => PageFrom::Before(Some(resolve(model, &q.page_id))),
        },
        flip_page: q.flip,
        count: true,
    }
}

/// The expected answer: ids of the page, first, last, complete, count; or `NotFound`.
fn expect(
    model: &[Model],
    q: &Query,
    matches: impl Fn(&Model, &str) -> bool,
) -> Option<(Vec<String>, bool, u64)> {
    let pos = |id: &String| model.iter().position(|m| m.id == *id);
    let mut known = vec![q.after_id.as_ref(), q.before_id.as_ref()];
    if let PageFrom::After(id) | PageFrom::Before(Some(id)) = &q.page {
        known.push(Some(id));
    }
    for id in known.into_iter().flatten().chain(q.ids.iter().flatten()) {
        pos(id)?;
    }
    let after = q.after_id.as_ref().and_then(pos);
    let before = q.before_id.as_ref().and_then(pos);
    let set: Vec<usize> = (0..model.len())
        .filter(|&i| {
            let m = &model[i];
            q.with.as_ref().is_none_or(|w| matches(m, w.as_str()))
                && q.start.is_none_or(|s| m.at >= s.as_micros())
                && q.end.is_none_or(|e| m.at <= e.as_micros())
                && after.is_none_or(|a| i > a)
                && before.is_none_or(|b| i < b)
                && q.ids.as_ref().is_none_or(|ids| ids.contains(&m.id))
        })
        .collect();
    let max = q.max.unwrap_or(50);
    let (mut page, backward): (Vec<usize>, bool) = match &q.page {
        PageFrom::First => (set.clone(), false),
        PageFrom::After(id) => {
            let p = pos(id)?;
            (set.iter().copied().filter(|&i| i > p).collect(), false)
        }
        PageFrom::Before(None) => (set.iter().rev().copied().collect(), true),
        PageFrom::Before(Some(id)) => {
            let p = pos(id)?;
            (set.iter().rev().copied().filter(|&i| i < p).collect(), true)
        }
    };
    let complete = page.len() <= max;
    page.truncate(max);
    if backward != q.flip_page {
        page.reverse();
    }
    Some((
        page.iter().map(|&i| model[i].id.clone()).collect(),
        complete,
        set.len() as u64,
    ))
}

fn check<M>(
    got: jidstore::Result<Page<M>>,
    want: Option<(Vec<String>, bool, u64)>,
    id: impl Fn(&M) -> &str,
) -> Result<(), TestCaseError> {
    match (got, want) {
        (Err(Error::NotFound(_)), None) => {}
        (Ok(page), Some((ids, complete, count))) => {
            let got: Vec<&str> = page.messages.iter().map(id).collect();
            prop_assert_eq!(&got, &ids);
            prop_assert_eq!(page.first.as_deref(), ids.first().map(String::as_str));
            prop_assert_eq!(page.last.as_deref(), ids.last().map(String::as_str));
            prop_assert_eq!(page.complete, complete);
            prop_assert_eq!(page.count, Some(count));
        }
        (Err(e), want) => prop_assert!(false, "error {e}, wanted {want:?}"),
        (Ok(page), None) => {
            prop_assert!(false, "page {:?}, wanted NotFound", page.first);
        }
    }
    Ok(())
}

/// Archive time: the timestamp, or the previous archive time if later.
fn next_at(model: &[Model], secs: i64) -> i64 {
    let ts = Timestamp::from_secs(secs).as_micros();
    model.last().map_or(ts, |m| m.at.max(ts))
}

fn fill_pm(store: &Store, owner: &BareJid, msgs: &[Msg]) -> Vec<Model> {
    let me = full("alice@x/home");
    let mut model: Vec<Model> = Vec::new();
    let mut pending: Vec<PmMessage> = Vec::new();
    let flush = |pending: &mut Vec<PmMessage>| {
        store
            .mam()
            .append_bulk(owner, std::mem::take(pending))
            .unwrap();
    };
    for (n, m) in msgs.iter().enumerate() {
        let peer = full(PEERS[m.who]);
        let (from, to, direction) = if m.incoming {
            (peer.clone(), me.clone(), Direction::Incoming)
        } else {
            (me.clone(), peer.clone(), Direction::Outgoing)
        };
        let msg = PmMessage {
            id: m.imported.then(|| format!("imp-{n}")),
            timestamp: Timestamp::from_secs(m.secs),
            from,
            to,
            direction,
            origin_id: None,
            stanza: format!("<message><body>{n}</body></message>"),
        };
        let at = next_at(&model, m.secs);
        let id = if m.bulk {
            pending.push(msg.clone());
            msg.id.clone().unwrap_or_default()
        } else {
            flush(&mut pending);
            store.mam().append(owner, &msg).unwrap()
        };
        model.push(Model {
            id,
            at,
            with: peer.as_str().to_owned(),
            sender: None,
        });
    }
    flush(&mut pending);
    // Bulk-appended native ids are learned from the archive, in order.
    let listed = store.mam().list(owner).unwrap();
    assert_eq!(listed.len(), model.len());
    for (m, l) in model.iter_mut().zip(&listed) {
        if m.id.is_empty() {
            m.id.clone_from(&l.id);
        }
        assert_eq!(m.id, l.id);
    }
    model
}

fn pm_matches(m: &Model, with: &str) -> bool {
    if with.contains('/') {
        m.with == with
    } else {
        m.with.split('/').next() == Some(with)
    }
}

fn room_matches(m: &Model, with: &str) -> bool {
    if with.contains('/') {
        m.with == with
    } else {
        with == ROOM || m.sender.as_deref() == Some(with)
    }
}

fn fill_room(store: &Store, room: &BareJid, msgs: &[Msg]) -> Vec<Model> {
    let mut model: Vec<Model> = Vec::new();
    for (n, m) in msgs.iter().enumerate() {
        let (nick, sender) = NICKS[m.who % NICKS.len()];
        let at = next_at(&model, m.secs);
        let id = store
            .muc()
            .append(
                room,
                &MucMessage {
                    id: m.imported.then(|| format!("imp-{n}")),
                    timestamp: Timestamp::from_secs(m.secs),
                    sender: bare(sender),
                    nick: nick.to_owned(),
                    stanza: format!("<message type='groupchat'><body>{n}</body></message>"),
                },
            )
            .unwrap();
        model.push(Model {
            id,
            at,
            with: format!("{ROOM}/{nick}"),
            sender: Some(sender.to_owned()),
        });
    }
    model
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn pm_queries_match_model(msgs in msgs(), qs in proptest::collection::vec(queries(), 1..12)) {
        let (_dir, store) = store();
        let alice = user(&store, "alice@x");
        // Another archive interleaved, so ranges and ids must stay inside alice's.
        let other = user(&store, "bob@x");
        store.mam().append_bulk(&other, (0..3).map(|i| PmMessage {
            id: Some(format!("imp-{i}")),
            timestamp: Timestamp::from_secs(i),
            from: full("bob@x/a"),
            to: full("alice@x/home"),
            direction: Direction::Outgoing,
            origin_id: None,
            stanza: "<message/>".into(),
        })).unwrap();
        let model = fill_pm(&store, &alice, &msgs);
        let with: Vec<String> = PEERS.iter().map(|s| (*s).to_owned())
            .chain(["bob@x", "dave@x", "alice@x"].map(str::to_owned)).collect();
        for q in &qs {
            let query = build_query(&model, q, &with);
            let want = expect(&model, &query, pm_matches);
            check(store.mam().query(&alice, &query), want, |m| m.id.as_str())?;
        }
        let meta = store.mam().metadata(&alice).unwrap();
        prop_assert_eq!(meta.first.map(|e| e.id), model.first().map(|m| m.id.clone()));
        prop_assert_eq!(meta.last.map(|e| e.id), model.last().map(|m| m.id.clone()));
    }

    #[test]
    fn room_queries_match_model(msgs in msgs(), qs in proptest::collection::vec(queries(), 1..12)) {
        let (_dir, store) = store();
        let room = bare(ROOM);
        store.muc().append(&bare("other@muc.x"), &MucMessage::new(Timestamp::from_secs(3), bare("bob@x"), "bob", "<message/>")).unwrap();
        let model = fill_room(&store, &room, &msgs);
        let with: Vec<String> = NICKS.iter().map(|(n, _)| format!("{ROOM}/{n}"))
            .chain([ROOM, "bob@x", "carol@x", "bob@x/bob"].map(str::to_owned)).collect();
        for q in &qs {
            let query = build_query(&model, q, &with);
            let want = expect(&model, &query, room_matches);
            check(store.muc().query(&room, &query), want, |m| m.id.as_str())?;
        }
        let meta = store.muc().metadata(&room).unwrap();
        prop_assert_eq!(meta.last.map(|e| e.id), model.last().map(|m| m.id.clone()));
    }
}

/// Paging forward with `after = last` and back with `before = first` visits every message
/// once, oldest to newest within each page, and stops on `complete`.
#[test]
fn rsm_walk_both_ways() -> TestResult {
    let (_dir, store) = store();
    let alice = user(&store, "alice@x");
    let n = 23u32;
    store.mam().append_bulk(
        &alice,
        (0..n).map(|i| PmMessage {
            id: None,
            // Equal and backwards timestamps on purpose.
            timestamp: Timestamp::from_secs(i64::from(10 - i % 3)),
            from: full("bob@x/a"),
            to: full("alice@x/home"),
            direction: Direction::Incoming,
            origin_id: None,
            stanza: format!("<message><body>{i}</body></message>"),
        }),
    )?;
    let all: Vec<String> = store
        .mam()
        .list(&alice)?
        .into_iter()
        .map(|m| m.id)
        .collect();
    let mut seen = Vec::new();
    let mut page = PageFrom::First;
    loop {
        let p = store.mam().query(
            &alice,
            &Query {
                max: Some(5),
                page: page.clone(),
                ..Query::default()
            },
        )?;
        seen.extend(p.messages.iter().map(|m| m.id.clone()));
        if p.complete {
            break;
        }
        page = PageFrom::After(p.last.unwrap());
    }
    assert_eq!(seen, all);
    let mut back: Vec<String> = Vec::new();
    let mut page = PageFrom::Before(None);
    loop {
        let p = store.mam().query(
            &alice,
            &Query {
                max: Some(4),
                page: page.clone(),
                ..Query::default()
            },
        )?;
        let ids: Vec<String> = p.messages.iter().map(|m| m.id.clone()).collect();
        back.splice(0..0, ids);
        if p.complete {
            break;
        }
        page = PageFrom::Before(p.first);
    }
    assert_eq!(back, all);
    Ok(())
}

/// One message from bob@x/a to alice@x, as alice archives it.
fn bob_to_alice() -> PmMessage {
    PmMessage::new(
        Timestamp::from_secs(1),
        full("bob@x/a"),
        full("alice@x"),
        Direction::Incoming,
        "<message/>",
    )
}

#[test]
fn unknown_ids_and_owners() -> TestResult {
    let (_dir, store) = store();
    let alice = user(&store, "alice@x");
    let bob = user(&store, "bob@x");
    let msg = bob_to_alice();
    let bobs = store.mam().append(&bob, &msg)?;
    store.mam().append(&alice, &msg)?;
    for q in [
        Query {
            after_id: Some(bobs.clone()),
            ..Query::default()
        },
        Query {
            ids: Some(vec![bobs.clone()]),
            ..Query::default()
        },
        Query {
            page: PageFrom::Before(Some("nope".into())),
            ..Query::default()
        },
    ] {
        assert!(matches!(
            store.mam().query(&alice, &q),
            Err(Error::NotFound(_))
        ));
    }
    assert_no_account(store.mam().query(&bare("ghost@x"), &Query::default()));
    Ok(())
}

/// The sweep after an erasure deletes the index entries too, and counts only messages.
#[test]
fn erase_sweeps_indexes() -> TestResult {
    let (_dir, store) = store();
    let alice = user(&store, "alice@x");
    let n = store.mam().append_bulk(
        &alice,
        (0..30).map(|i| PmMessage {
            id: (i % 4 == 0).then(|| format!("imp{i}")),
            timestamp: Timestamp::from_secs(i),
            from: full("bob@x/a"),
            to: full("alice@x"),
            direction: Direction::Incoming,
            origin_id: None,
            stanza: "<message/>".into(),
        }),
    )?;
    assert_eq!(n, 30);
    let receipt = jidstore::gdpr::remove(&store, &alice)?;
    assert_eq!(receipt.removed.get("mam_pm"), Some(&30));
    let stats = jidstore::stats(&store)?;
    for (name, ks) in &stats.keyspaces {
        if name.starts_with("mam_pm") {
            assert_eq!(ks.entries, 0, "{name}");
        }
    }
    let alice = user(&store, "alice@x");
    assert_eq!(store.mam().metadata(&alice)?.first, None);
    Ok(())
}

/// Bulk ingest stores records in blocks; removing single messages (the first of a block,
/// one in the middle, a whole block, the last one) leaves exactly the others for every read,
/// and `verify` stays clean.
#[test]
fn removing_from_blocks_keeps_the_rest() -> TestResult {
    let (_dir, store) = store();
    let alice = user(&store, "alice@x");
    let peers = ["bob@x/a", "carol@x/b", "bob@x/c"];
    store.mam().append_bulk(
        &alice,
        (0..40usize).map(|i| PmMessage {
            id: (i % 7 == 3).then(|| format!("imp{i}")),
            timestamp: Timestamp::from_secs(i64::try_from(i / 2).unwrap_or(0)),
            from: full(peers[i % 3]),
            to: full("alice@x/home"),
            direction: Direction::Incoming,
            origin_id: None,
            stanza: format!("<message><body>{i}</body></message>"),
        }),
    )?;
    let mut kept = store.mam().list(&alice)?;
    assert_eq!(kept.len(), 40);
    let gone_at = [0usize, 1, 8, 13, 16, 17, 18, 19, 20, 21, 22, 23, 39, 3];
    let mut gone = Vec::new();
    for i in gone_at {
        let id = kept.get(i).map(|m| m.id.clone()).ok_or("index")?;
        gone.push(id);
    }
    for id in &gone {
        assert!(store.mam().remove(&alice, id)?, "{id}");
        assert!(!store.mam().remove(&alice, id)?, "removed twice: {id}");
    }
    kept.retain(|m| !gone.contains(&m.id));
    assert_eq!(store.mam().list(&alice)?, kept);
    let back: Vec<_> = store.mam().iter(&alice)?.rev().collect::<Result<_, _>>()?;
    assert_eq!(back.into_iter().rev().collect::<Vec<_>>(), kept);
    assert_eq!(store.mam().count(&alice)?, kept.len() as u64);
    for id in &gone {
        assert_eq!(store.mam().get(&alice, id)?, None);
        let q = Query {
            after_id: Some(id.clone()),
            ..Query::default()
        };
        assert!(matches!(
            store.mam().query(&alice, &q),
            Err(Error::NotFound(_))
        ));
    }
    let bob: Vec<_> = kept
        .iter()
        .filter(|m| m.from.to_bare().as_str() == "bob@x")
        .cloned()
        .collect();
    let q = Query {
        with: Some(Jid::parse("bob@x")?),
        max: Some(100),
        count: true,
        ..Query::default()
    };
    let page = store.mam().query(&alice, &q)?;
    assert_eq!(page.messages, bob);
    assert_eq!(page.count, Some(bob.len() as u64));
    let meta = store.mam().metadata(&alice)?;
    assert_eq!(meta.first.map(|e| e.id), kept.first().map(|m| m.id.clone()));
    assert_eq!(meta.last.map(|e| e.id), kept.last().map(|m| m.id.clone()));
    let report = jidstore::verify(&store)?;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    // An imported id freed by a removal can be archived again; one still held cannot.
    let again = PmMessage {
        id: Some("imp3".into()),
        timestamp: Timestamp::from_secs(100),
        from: full("bob@x/a"),
        to: full("alice@x"),
        direction: Direction::Incoming,
        origin_id: None,
        stanza: "<message/>".into(),
    };
    assert_eq!(store.mam().append(&alice, &again)?, "imp3");
    let held = PmMessage {
        id: Some("imp10".into()),
        ..again
    };
    assert!(store.mam().append(&alice, &held).is_err());
    Ok(())
}

/// A bulk import refuses an id already in the archive and one given twice, and writes
/// nothing of the chunk that holds it.
#[test]
fn bulk_refuses_duplicate_ids() -> TestResult {
    let (_dir, store) = store();
    let alice = user(&store, "alice@x");
    let m = |id: &str| PmMessage {
        id: Some(id.to_owned()),
        timestamp: Timestamp::from_secs(1),
        from: full("bob@x/a"),
        to: full("alice@x"),
        direction: Direction::Incoming,
        origin_id: None,
        stanza: "<message/>".into(),
    };
    store.mam().append(&alice, &m("a"))?;
    assert!(store.mam().append_bulk(&alice, [m("b"), m("a")]).is_err());
    assert!(store.mam().append_bulk(&alice, [m("c"), m("c")]).is_err());
    assert_eq!(store.mam().count(&alice)?, 1);
    assert_eq!(store.mam().append_bulk(&alice, [m("b"), m("c")])?, 2);
    assert!(store.mam().append(&alice, &m("c")).is_err());
    Ok(())
}

/// `jidstore mam query`: lines, footer, paging flags, `NotFound` exit 1, usage exit 2.
/// Five messages for alice (bob and carol alternate) and one room message; returns ids.
fn cli_fixture(data: &std::path::Path) -> jidstore::Result<Vec<String>> {
    {
        let store = jidstore::Config::new(data).scram_iterations(16).open()?;
        let alice = user(&store, "alice@x");
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(store.mam().append(
                &alice,
                &PmMessage::new(
                    Timestamp::from_secs(1_700_000_000 + i),
                    full(if i % 2 == 0 { "bob@x/a" } else { "carol@x/b" }),
                    full("alice@x/home"),
                    Direction::Incoming,
                    format!("<message>\n<body>{i}</body></message>"),
                ),
            )?);
        }
        store.muc().append(
            &bare(ROOM),
            &MucMessage {
                id: Some("r1".into()),
                timestamp: Timestamp::from_secs(1_700_000_000),
                sender: bare("bob@x"),
                nick: "bo".into(),
                stanza: "<message type='groupchat'/>".into(),
            },
        )?;
        store.flush()?;
        Ok(ids)
    }
}

#[test]
fn cli_mam_query() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let ids = cli_fixture(&data)?;
    std::thread::sleep(std::time::Duration::from_millis(200));
    // `jidstore mam query ARGS`, and the footer line of its output.
    let query = |args: &[&str]| jidstore(&data, &[&["mam", "query"], args].concat());
    let footer = |args: &[&str]| query(args).stdout.lines().last().unwrap().to_owned();
    let r = query(&["alice", "x", "--with", "bob@x", "--max", "2"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", r.stdout);
    assert!(
        lines[0].starts_with(&format!(
            "{}\t2023-11-14T22:13:20.000000Z\tbob@x/a\talice@x/home\t<message> <body>0",
            ids[0]
        )),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines[2],
        format!("first={} last={} complete=false count=3", ids[0], ids[2])
    );
    assert_eq!(
        footer(&["alice", "x", "--before", "--max", "1", "--flip-page"]),
        format!("first={0} last={0} complete=false count=5", ids[4])
    );
    assert_eq!(
        footer(&[
            "alice",
            "x",
            "--after",
            &ids[3],
            "--end",
            "2023-11-14T22:13:24Z"
        ]),
        format!("first={0} last={0} complete=true count=5", ids[4])
    );
    let r = query(&["--room", ROOM, "--with", &format!("{ROOM}/bo")]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with("r1\t"), "{}", r.stdout);
    let r = query(&["alice", "x", "--ids", &format!("{},nope", ids[0])]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.trim(), "jidstore: message id 'nope' not found");
    assert!(r.stdout.is_empty());
    assert_eq!(query(&["alice"]).code, 2);
    assert_eq!(
        query(&["alice", "x", "--after", "a", "--before", "b"]).code,
        2
    );
    Ok(())
}

/// A format 1 store (single records only) opens, keeps its archive and is marked format 2;
/// a newer format is refused with a clear error.
#[test]
fn format_1_store_is_upgraded_and_newer_refused() -> TestResult {
    let (dir, store) = store();
    let alice = user(&store, "alice@x");
    let msg = bob_to_alice();
    let id = store.mam().append(&alice, &msg)?;
    let meta = store.raw_tree(jidstore::__internal::keys::Keyspace::Meta);
    meta.insert(jidstore::__internal::keys::META_FORMAT, 1u64.to_be_bytes())?;
    let store = reopen(&dir, store);
    let raw = store
        .raw_tree(jidstore::__internal::keys::Keyspace::Meta)
        .get(jidstore::__internal::keys::META_FORMAT)?
        .ok_or("no format key")?;
    assert_eq!(raw.as_ref(), &2u64.to_be_bytes());
    assert_eq!(
        store.mam().get(&alice, &id)?.map(|m| m.stanza),
        Some(msg.stanza.clone())
    );
    store
        .raw_tree(jidstore::__internal::keys::Keyspace::Meta)
        .insert(jidstore::__internal::keys::META_FORMAT, 3u64.to_be_bytes())?;
    store.flush()?;
    drop(store);
    let err = jidstore::Config::new(dir.path().join("data"))
        .lock_timeout(std::time::Duration::from_secs(5))
        .open()
        .err()
        .ok_or("a format 3 store opened")?;
    assert!(
        err.to_string()
            .contains("store format version 3 is not supported"),
        "{err}"
    );
    Ok(())
}

/// A `with` page skips index entries whose records are gone (an import cut short), at the
/// start, in the middle and at the end, however the page boundaries fall, both ways.
#[test]
fn with_pages_skip_entries_without_records() -> TestResult {
    use jidstore::__internal::keys::Keyspace;
    let (_dir, store) = store();
    let alice = user(&store, "alice@x");
    let peers = ["bob@x/a", "bob@x/b", "carol@x/c"];
    store.mam().append_bulk(
        &alice,
        (0..40usize).map(|i| PmMessage {
            id: None,
            timestamp: Timestamp::from_secs(i64::try_from(i).unwrap_or(0)),
            from: full(peers[i % 3]),
            to: full("alice@x/home"),
            direction: Direction::Incoming,
            origin_id: None,
            stanza: format!("<message><body>{i}</body></message>"),
        }),
    )?;
    // The record blocks (archive, tag, first seq: 17 bytes; `with` keys hold the JID).
    let tree = store.raw_tree(Keyspace::MamPm);
    let blocks: Vec<Vec<u8>> = tree
        .iter()
        .map(|kv| kv.map(|(k, _)| k.to_vec()))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|k| k.len() == 17)
        .collect();
    assert_eq!(blocks.len(), 5, "40 records in blocks of 8");
    for i in [0usize, 2, 4] {
        tree.remove(blocks.get(i).ok_or("block")?)?;
    }
    let bob: Vec<_> = store
        .mam()
        .list(&alice)?
        .into_iter()
        .filter(|m| m.from.to_bare().as_str() == "bob@x")
        .collect();
    assert_eq!(
        bob.len(),
        11,
        "blocks 1 and 3 hold 16 messages, 11 from bob"
    );
    for max in [1usize, 2, 3, 5, 11, 100] {
        let query = |page: PageFrom| Query {
            with: Some(Jid::parse("bob@x").unwrap_or_else(|_| unreachable!())),
            max: Some(max),
            page,
            ..Query::default()
        };
        let mut forward = Vec::new();
        let mut page = PageFrom::First;
        for _ in 0..=bob.len() {
            let p = store.mam().query(&alice, &query(page))?;
            forward.extend(p.messages);
            match (p.complete, p.last) {
                (false, Some(last)) => page = PageFrom::After(last),
                _ => break,
            }
        }
        assert_eq!(forward, bob, "forward, max {max}");
        let mut backward = Vec::new();
        let mut page = PageFrom::Before(None);
        for _ in 0..=bob.len() {
            let p = store.mam().query(&alice, &query(page))?;
            backward.splice(0..0, p.messages);
            match (p.complete, p.first) {
                (false, Some(first)) => page = PageFrom::Before(Some(first)),
                _ => break,
            }
        }
        assert_eq!(backward, bob, "backward, max {max}");
    }
    Ok(())
}
