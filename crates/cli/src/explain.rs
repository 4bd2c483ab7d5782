//! `sharedefend explain NAME`: why a name is (not) blocked, with all the evidence.

use std::process::ExitCode;

use hub::Explanation;
use serde_json::{Value, json};

use crate::hubcli::StoreArgs;

/// Show everything the hub knows about a name, URL or address, and why it is or is
/// not blocked: decision, score breakdown, observations, guard rails, rules, feeds,
/// serials, audit trail.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    store: StoreArgs,
    /// The name, URL or address (defanged is fine).
    value: String,
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mut hub = args.store.open_hub()?;
    let e = hub.explain(&args.value, args.store.now())?;
    if args.json {
        println!("{}", to_json(&e));
    } else {
        print_human(&e);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn to_json(e: &Explanation) -> Value {
    json!({
        "query": e.query,
        "known": e.indicator.is_some(),
        "kind": e.indicator.as_ref().map(|i| i.kind.clone()),
        "state": e.decision.as_ref().map(|d| d.state.clone()),
        "score": e.decision.as_ref().map(|d| d.score),
        "category": e.decision.as_ref().map(|d| d.category.clone()),
        "decided_at": e.decision.as_ref().map(|d| d.decided_at.to_string()),
        "reasons": e.decision.as_ref().map(|d| d.reasons.clone()).unwrap_or_default(),
        "score_now": e.score.as_ref().map(|s| json!({
            "value": s.value, "base": s.base, "decay": s.decay,
            "age_seconds": s.age.as_secs(),
            "groups": s.groups.iter().map(|g| json!({"group": g.group, "source": g.source, "value": g.value})).collect::<Vec<_>>(),
        })),
        "observations": e.observations.iter().map(|o| json!({
            "source": o.source, "trust": o.trust, "group": o.group, "category": o.category,
            "confidence": o.confidence, "tlp": o.tlp, "tags": o.tags,
            "first_seen": o.first_seen.to_string(), "last_seen": o.last_seen.to_string(),
            "valid_until": o.valid_until.map(|v| v.to_string()), "count": o.count, "reference": o.reference,
        })).collect::<Vec<_>>(),
        "rules": e.rules.iter().map(|r| json!({"feed": r.feed, "trigger": r.trigger, "action": r.action, "serial": r.serial})).collect::<Vec<_>>(),
        "matched_by": e.matched_by.iter().map(|r| json!({"feed": r.feed, "trigger": r.trigger, "action": r.action, "serial": r.serial})).collect::<Vec<_>>(),
        "protected_by": e.protected_by,
        "related": e.related.iter().map(|(v, s)| json!({"value": v, "state": s})).collect::<Vec<_>>(),
        "audit": e.audit.iter().map(|a| json!({"at": a.at.to_string(), "who": a.who, "action": a.action, "reason": a.reason})).collect::<Vec<_>>(),
    })
}

fn print_human(e: &Explanation) {
    println!("{}", e.query);
    match (&e.indicator, &e.decision) {
        (None, _) => println!("  not reported by any source"),
        (Some(i), Some(d)) => {
            println!("  kind         {}", i.kind);
            println!(
                "  state        {} (score {:.2}, {}, decided {})",
                d.state, d.score, d.category, d.decided_at
            );
            for r in &d.reasons {
                println!("    {r}");
            }
        }
        (Some(i), None) => println!("  kind         {} (no decision yet)", i.kind),
    }
    if let Some(s) = &e.score {
        println!(
            "  score now    {:.2} = base {:.2} × decay {:.2} ({} h since last seen)",
            s.value,
            s.base,
            s.decay,
            s.age.as_secs() / 3600
        );
        for g in &s.groups {
            println!(
                "    group {:<20} {:.2} (from {})",
                g.group, g.value, g.source
            );
        }
    }
    if !e.observations.is_empty() {
        println!("  observations");
        for o in &e.observations {
            println!(
                "    {} (trust {:.2}{}): {} conf {} tlp:{} first {} last {} ×{}{}",
                o.source,
                o.trust,
                o.group
                    .as_ref()
                    .map(|g| format!(", group {g}"))
                    .unwrap_or_default(),
                o.category,
                o.confidence.map_or("-".to_owned(), |c| c.to_string()),
                o.tlp,
                o.first_seen,
                o.last_seen,
                o.count,
                o.reference
                    .as_ref()
                    .map(|r| format!(" ref {r}"))
                    .unwrap_or_default(),
            );
        }
    }
    if !e.rules.is_empty() {
        println!("  rules");
        for r in &e.rules {
            println!(
                "    {} {} in {} (serial {})",
                r.trigger,
                r.action,
                r.feed,
                r.serial.map_or("-".into(), |s| s.to_string())
            );
        }
    }
    if !e.matched_by.is_empty() {
        println!("  blocked by");
        for r in &e.matched_by {
            println!(
                "    {} {} in {} (serial {})",
                r.trigger,
                r.action,
                r.feed,
                r.serial.map_or("-".into(), |s| s.to_string())
            );
        }
    }
    if let Some(p) = &e.protected_by {
        println!("  protected    {p}");
    }
    if !e.related.is_empty() {
        println!("  same host");
        for (v, s) in &e.related {
            println!("    {v} ({s})");
        }
    }
    if !e.audit.is_empty() {
        println!("  audit");
        for a in &e.audit {
            println!("    {} {} {}: {}", a.at, a.who, a.action, a.reason);
        }
    }
}
