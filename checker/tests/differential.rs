//! Differential test: thousands of random small concurrent register histories (ok, fail and
//! info mixed) are checked three ways — by the search, by a brute-force checker that tries
//! every order, and by porcupine-rs — and the verdicts must agree. A second family checks a
//! multi-key history partitioned by key and as one partition against the brute force.

use checker::history::{Name, Operation, Outcome};
use checker::{CheckOptions, ModelKind, Verdict, check_operations};
use porcupine::model::{Model as PModel, Operation as POp};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

const CASES: u64 = 3000;
/// Returns of unknown operations sit after everything else for porcupine-rs.
const NEVER: i64 = 1 << 40;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
    Cas,
}

/// Generates a history by simulating a register with linearization points, then with some
/// probability corrupts one read so that many histories are not linearizable.
fn generate(rng: &mut ChaCha8Rng, keys: usize) -> Vec<Operation> {
    let procs = rng.random_range(2..=4u64);
    let n = rng.random_range(1..=7usize);
    // Distinct event times: draw a sequence of (call, lp, ret) per op per process.
    struct Pending {
        op: Operation,
        lp: u64,
        kind: Kind,
        applies: bool,
    }
    let mut pend: Vec<Pending> = Vec::new();
    let mut clock = vec![0u64; procs as usize];
    let mut next_proc = procs;
    let mut proc_of: Vec<u64> = (0..procs).collect();
    for i in 0..n {
        let slot = rng.random_range(0..procs as usize);
        let call = clock[slot] + rng.random_range(1..20u64);
        let dur = rng.random_range(1..30u64);
        let ret = call + dur;
        let lp = call + rng.random_range(0..dur);
        clock[slot] = ret;
        let kind = match rng.random_range(0..3) {
            0 => Kind::Read,
            1 => Kind::Write,
            _ => Kind::Cas,
        };
        let r = rng.random_range(0..10);
        let outcome = if r < 7 {
            Outcome::Ok
        } else if r < 8 {
            Outcome::Fail
        } else {
            Outcome::Unknown
        };
        let v = rng.random_range(0..3i64);
        let w = rng.random_range(0..3i64);
        let key = if keys > 1 {
            Some(format!("k{}", rng.random_range(0..keys)))
        } else {
            None
        };
        let process = proc_of[slot];
        if outcome == Outcome::Unknown {
            // After info a worker continues as a new process.
            proc_of[slot] = next_proc;
            next_proc += 1;
        }
        let input = match kind {
            Kind::Read => Value::Null,
            Kind::Write => json!(v),
            Kind::Cas => json!([v, w]),
        };
        pend.push(Pending {
            op: Operation {
                process,
                f: match kind {
                    Kind::Read => "read",
                    Kind::Write => "write",
                    Kind::Cas => "cas",
                }
                .into(),
                key: key.map(Name::from),
                input: input.clone(),
                output: input,
                outcome,
                // Times are made distinct below.
                call: call * 1000 + i as u64,
                ret: (outcome != Outcome::Unknown).then_some(ret * 1000 + i as u64),
                invoke_index: i as u64,
                complete_index: None,
                error: None,
            },
            lp: lp * 1000 + i as u64,
            kind,
            applies: outcome == Outcome::Ok
                || (outcome == Outcome::Unknown && rng.random_range(0..2) == 0),
        });
    }
    // Apply in linearization-point order.
    let mut order: Vec<usize> = (0..pend.len()).collect();
    order.sort_by_key(|&i| pend[i].lp);
    let mut state: std::collections::HashMap<Option<Name>, Value> = Default::default();
    for i in order {
        let p = &mut pend[i];
        let cur = state.get(&p.op.key).cloned().unwrap_or(Value::Null);
        match p.kind {
            Kind::Read => p.op.output = cur,
            Kind::Write => {
                if p.applies {
                    state.insert(p.op.key.clone(), p.op.input.clone());
                }
            }
            Kind::Cas => {
                if p.op.input[0] != cur {
                    // A cas whose precondition fails is reported as a failure.
                    if p.op.outcome == Outcome::Ok {
                        p.op.outcome = Outcome::Fail;
                    }
                } else if p.applies {
                    state.insert(p.op.key.clone(), p.op.input[1].clone());
                }
            }
        }
    }
    let mut ops: Vec<Operation> = pend.into_iter().map(|p| p.op).collect();
    if rng.random_range(0..3) == 0 {
        let reads: Vec<usize> = (0..ops.len())
            .filter(|&i| ops[i].f == "read" && ops[i].outcome == Outcome::Ok)
            .collect();
        if !reads.is_empty() {
            let i = reads[rng.random_range(0..reads.len())];
            ops[i].output = match rng.random_range(0..4i64) {
                3 => Value::Null,
                v => json!(v),
            };
        }
    }
    ops
}

/// Tries every order: required (ok) operations must all be placed, unknown ones may be.
fn brute_force(ops: &[Operation]) -> bool {
    brute_force_with(ops, false)
}

/// `etcd`: Porcupine's etcd reading, where a failed cas observed "the value was not old".
fn brute_force_with(ops: &[Operation], etcd: bool) -> bool {
    let live: Vec<&Operation> = ops
        .iter()
        .filter(|o| o.outcome != Outcome::Fail || (etcd && o.f == "cas"))
        .collect();
    fn go(
        live: &[&Operation],
        used: &mut Vec<bool>,
        state: &mut std::collections::HashMap<Option<Name>, Value>,
    ) -> bool {
        if live
            .iter()
            .zip(used.iter())
            .all(|(o, u)| *u || o.outcome == Outcome::Unknown)
        {
            return true;
        }
        for i in 0..live.len() {
            if used[i] {
                continue;
            }
            let x = live[i];
            // Every unplaced operation that returned before x was called must come first.
            let blocked = live.iter().zip(used.iter()).any(|(o, u)| {
                !*u && o.outcome != Outcome::Unknown && o.ret.is_some_and(|r| r < x.call)
            });
            if blocked {
                continue;
            }
            let cur = state.get(&x.key).cloned().unwrap_or(Value::Null);
            let next = match x.f.as_str() {
                "read" if x.outcome == Outcome::Ok => {
                    if x.output != cur {
                        continue;
                    }
                    cur.clone()
                }
                "read" => cur.clone(),
                "write" => x.input.clone(),
                _ if x.outcome == Outcome::Fail => {
                    if x.input[0] == cur {
                        continue;
                    }
                    cur.clone()
                }
                _ => {
                    if x.input[0] != cur {
                        continue;
                    }
                    x.input[1].clone()
                }
            };
            used[i] = true;
            state.insert(x.key.clone(), next);
            let ok = go(live, used, state);
            state.insert(x.key.clone(), cur);
            used[i] = false;
            if ok {
                return true;
            }
        }
        false
    }
    go(&live, &mut vec![false; live.len()], &mut Default::default())
}

#[test]
fn search_and_brute_force_agree_on_porcupines_etcd_reading() {
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let (mut good, mut bad) = (0, 0);
    for case in 0..CASES {
        let ops = generate(&mut rng, 1);
        let expect = brute_force_with(&ops, true);
        let got = ours(&ops, ModelKind::PorcupineEtcd, false);
        assert_eq!(
            got, expect,
            "case {case}: search vs brute force on {ops:#?}"
        );
        if expect { good += 1 } else { bad += 1 }
    }
    assert!(
        good > CASES / 5 && bad > CASES / 10,
        "good {good}, bad {bad}"
    );
}

#[derive(Clone)]
struct Reg;

#[derive(Clone, Debug)]
enum ROp {
    Read(Option<i64>),
    Write(i64),
    Cas(i64, i64),
    /// A cas with an unknown result: applies if it matches, otherwise nothing.
    CasMaybe(i64, i64),
}

impl PModel for Reg {
    type State = Option<i64>;
    type Op = ROp;
    type Metadata = ();
    fn init() -> Option<i64> {
        None
    }
    fn step(s: &Option<i64>, op: &ROp) -> (bool, Option<i64>) {
        match *op {
            ROp::Read(v) => (v == *s, *s),
            ROp::Write(v) => (true, Some(v)),
            ROp::Cas(a, b) => (Some(a) == *s, Some(b)),
            ROp::CasMaybe(a, b) => (true, if Some(a) == *s { Some(b) } else { *s }),
        }
    }
}

fn porcupine_verdict(ops: &[Operation]) -> bool {
    let mut hist = Vec::new();
    for o in ops {
        if o.outcome == Outcome::Fail || (o.f == "read" && o.outcome != Outcome::Ok) {
            continue;
        }
        let unknown = o.outcome == Outcome::Unknown;
        let op = match o.f.as_str() {
            "read" => ROp::Read(o.output.as_i64()),
            "write" => ROp::Write(o.input.as_i64().unwrap()),
            _ => {
                let (a, b) = (o.input[0].as_i64().unwrap(), o.input[1].as_i64().unwrap());
                if unknown {
                    ROp::CasMaybe(a, b)
                } else {
                    ROp::Cas(a, b)
                }
            }
        };
        hist.push(POp::<Reg> {
            client_id: Some(o.process as u32),
            call_time: o.call as i64,
            return_time: o.ret.map_or(NEVER, |r| r as i64),
            op,
            metadata: None,
        });
    }
    porcupine::check_operations(&hist)
}

fn ours(ops: &[Operation], model: ModelKind, by_key: bool) -> bool {
    let mut opts = CheckOptions::new(model);
    opts.by_key = Some(by_key);
    opts.threads = 1;
    match check_operations(ops, &opts).expect("valid ops").verdict {
        Verdict::Linearizable => true,
        Verdict::NotLinearizable => false,
        Verdict::Unknown => panic!("no budget was set"),
    }
}

#[test]
fn search_brute_force_and_porcupine_agree_on_random_registers() {
    let mut rng = ChaCha8Rng::seed_from_u64(20261123);
    let (mut good, mut bad) = (0, 0);
    for case in 0..CASES {
        let ops = generate(&mut rng, 1);
        let expect = brute_force(&ops);
        let got = ours(&ops, ModelKind::CasRegister, false);
        let por = porcupine_verdict(&ops);
        assert_eq!(
            got, expect,
            "case {case}: search vs brute force on {ops:#?}"
        );
        assert_eq!(
            por, expect,
            "case {case}: porcupine vs brute force on {ops:#?}"
        );
        if expect { good += 1 } else { bad += 1 }
    }
    // The generator must exercise both verdicts.
    assert!(
        good > CASES / 5 && bad > CASES / 10,
        "good {good}, bad {bad}"
    );
}

/// Checks `CASES` histories from `generate`, by key and as one partition, against
/// `brute`, and requires both verdicts to be exercised: more than a fifth of the cases
/// linearizable and more than `CASES / bad_share` not.
fn by_key_and_whole_agree_with(
    seed: u64,
    mut generate: impl FnMut(&mut ChaCha8Rng) -> Vec<Operation>,
    brute: impl Fn(&[Operation]) -> bool,
    model: ModelKind,
    bad_share: u64,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut good, mut bad) = (0, 0);
    for case in 0..CASES {
        let ops = generate(&mut rng);
        let expect = brute(&ops);
        assert_eq!(
            ours(&ops, model, true),
            expect,
            "case {case} by key: {ops:#?}"
        );
        assert_eq!(
            ours(&ops, model, false),
            expect,
            "case {case} whole: {ops:#?}"
        );
        if expect { good += 1 } else { bad += 1 }
    }
    assert!(
        good > CASES / 5 && bad > CASES / bad_share,
        "good {good}, bad {bad}"
    );
}

#[test]
fn partitioning_by_key_agrees_with_one_partition() {
    by_key_and_whole_agree_with(7, |r| generate(r, 2), brute_force, ModelKind::Kv, 20);
}

/// A random history of Porcupine's kv model (get/put/append on strings, ok/fail/info),
/// results from linearization points, then maybe one get's result replaced.
fn generate_strings(rng: &mut ChaCha8Rng, keys: usize) -> Vec<Operation> {
    let procs = rng.random_range(2..=4usize);
    let mut clock = vec![0u64; procs];
    // (operation, linearization point, takes effect)
    let mut made: Vec<(Operation, u64, bool)> = Vec::new();
    for i in 0..rng.random_range(1..=8u64) {
        let p = rng.random_range(0..procs);
        let call = clock[p] + rng.random_range(1..20u64);
        let ret = call + rng.random_range(1..30u64);
        clock[p] = ret;
        let lp = rng.random_range(call..ret);
        let f = ["get", "put", "append"][rng.random_range(0..3)];
        let value = ["", "a", "b", "ab"][rng.random_range(0..4)];
        let outcome = match rng.random_range(0..10) {
            0 => Outcome::Fail,
            1 | 2 => Outcome::Unknown,
            _ => Outcome::Ok,
        };
        let effect =
            outcome == Outcome::Ok || (outcome == Outcome::Unknown && rng.random_bool(0.5));
        let op = Operation {
            process: p as u64 + 100 * i,
            f: f.into(),
            key: Some(format!("k{}", rng.random_range(0..keys)).into()),
            input: if f == "get" {
                Value::Null
            } else {
                json!(value)
            },
            output: Value::Null,
            outcome,
            call: call * 100 + i,
            ret: (outcome != Outcome::Unknown).then_some(ret * 100 + i),
            invoke_index: i,
            complete_index: None,
            error: None,
        };
        made.push((op, lp * 100 + i, effect));
    }
    let mut order: Vec<usize> = (0..made.len()).collect();
    order.sort_by_key(|&i| made[i].1);
    let mut state: std::collections::HashMap<Option<Name>, String> = Default::default();
    for i in order {
        let (op, _, effect) = &mut made[i];
        let cur = state.entry(op.key.clone()).or_default();
        match op.f.as_str() {
            "get" => op.output = json!(cur.clone()),
            _ if !*effect => {}
            "put" => *cur = op.input.as_str().unwrap().to_owned(),
            _ => cur.push_str(op.input.as_str().unwrap()),
        }
    }
    let mut ops: Vec<Operation> = made.into_iter().map(|(op, _, _)| op).collect();
    let gets: Vec<usize> = (0..ops.len())
        .filter(|&i| ops[i].f == "get" && ops[i].outcome == Outcome::Ok)
        .collect();
    if !gets.is_empty() && rng.random_bool(0.6) {
        let i = gets[rng.random_range(0..gets.len())];
        ops[i].output = json!(["", "a", "ab", "b", "aab", "ba"][rng.random_range(0..6)]);
    }
    ops
}

/// Every order for Porcupine's kv model: ok operations must all be placed, unknown ones
/// may be; failed ones and gets with unknown results have no effect.
fn brute_force_strings(ops: &[Operation]) -> bool {
    let live: Vec<&Operation> = ops
        .iter()
        .filter(|o| o.outcome != Outcome::Fail && !(o.f == "get" && o.outcome != Outcome::Ok))
        .collect();
    fn go(
        live: &[&Operation],
        used: &mut [bool],
        state: &mut std::collections::HashMap<Option<Name>, String>,
    ) -> bool {
        if live
            .iter()
            .zip(used.iter())
            .all(|(o, u)| *u || o.outcome == Outcome::Unknown)
        {
            return true;
        }
        for i in 0..live.len() {
            let x = live[i];
            let blocked = live.iter().zip(used.iter()).any(|(o, u)| {
                !*u && o.outcome != Outcome::Unknown && o.ret.is_some_and(|r| r < x.call)
            });
            if used[i] || blocked {
                continue;
            }
            let before = state.get(&x.key).cloned().unwrap_or_default();
            let after = match x.f.as_str() {
                "get" if x.output.as_str() != Some(before.as_str()) => continue,
                "get" => before.clone(),
                "put" => x.input.as_str().unwrap().to_owned(),
                _ => before.clone() + x.input.as_str().unwrap(),
            };
            used[i] = true;
            state.insert(x.key.clone(), after);
            let ok = go(live, used, state);
            state.insert(x.key.clone(), before);
            used[i] = false;
            if ok {
                return true;
            }
        }
        false
    }
    go(&live, &mut vec![false; live.len()], &mut Default::default())
}

#[test]
fn porcupine_kv_search_and_screen_agree_with_brute_force() {
    // Covers the screen (`Model::refutes`) and the staged search it drives: by key, the
    // refuted keys are searched first and the others only if none fails.
    by_key_and_whole_agree_with(
        11,
        |r| generate_strings(r, 3),
        brute_force_strings,
        ModelKind::PorcupineKv,
        10,
    );
}
