//! The local participation pages: first-time setup, settings with the
//! benefits calculator, earnings and a dashboard. Server-rendered with
//! `maud` (which escapes every interpolated value); every form works and
//! saves without JavaScript, and a few lines of inline script only refresh
//! the calculator while a slider moves.
//!
//! # Who may use them
//! The pages change what this machine gives away, so they answer only
//! requests that (1) come from a loopback address, (2) name a loopback host
//! (`localhost`, `127.0.0.1`, `[::1]`; refusing other `Host` values stops
//! DNS-rebinding pages), and, for every POST, (3) carry a CSRF token derived
//! from the local API token (a web page on another origin cannot read it)
//! and, when the browser sends one, a same-host `Origin`. Peers reaching the
//! sidecar over the LAN for shard transfers never see them.

use crate::config::ParticipationSection;
use crate::http::network_view::{
    plot_svg, region_counts, NetworkSnapshot, NodeState, RepairOutcome, Risk, Series,
};
use crate::http::AppState;
use crate::node::agent::SettingsError;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use node_registry_integrity::zome_fns::{GetMyNode, GetNodeEarnings, GetNodeHealth};
use node_registry_integrity::NodeEarnings;
use registry_core::reward::{estimate_benefits, format_points, BenefitsEstimate, OfferInput};
use std::collections::HashMap;
use std::net::SocketAddr;
use thiserror::Error;

/// A form that cannot be applied; shown as a 400 page naming the field.
#[derive(Debug, Error, PartialEq)]
pub enum FormError {
    /// The CSRF token is missing or wrong.
    #[error(
        "this form has expired or did not come from this node's own page; reload and try again"
    )]
    Csrf,
    /// A number field is not a number in range.
    #[error("{field}: {value:?} is not a number from {min} to {max}")]
    Number {
        /// The form field.
        field: &'static str,
        /// What was sent.
        value: String,
        /// Smallest allowed.
        min: f64,
        /// Largest allowed.
        max: f64,
    },
    /// An unknown button or choice.
    #[error("unknown {field}: {value:?}")]
    Choice {
        /// The form field.
        field: &'static str,
        /// What was sent.
        value: String,
    },
}

/// The CSRF token of the pages: a key derived from the local API token, so
/// it is stable across restarts, differs per node and reveals nothing of
/// the API token.
pub fn csrf_token(api_token: &str) -> String {
    crate::encoding::hex(&blake3::derive_key(
        "elohim sidecar ui csrf v1",
        api_token.as_bytes(),
    ))
}

fn same(a: &str, b: &str) -> bool {
    crate::datadir::secrets_equal(a.as_bytes(), b.as_bytes())
}

/// The page routes (merged into the sidecar's router). The server must be
/// run with `into_make_service_with_connect_info::<SocketAddr>()` so the
/// pages can check who is asking; without it they refuse every request.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/setup", get(setup_page).post(setup_submit))
        .route("/settings", get(settings_page).post(settings_submit))
        .route("/settings/calculator", get(calculator_fragment))
        .route("/earnings", get(earnings_page))
        .route("/dashboard", get(dashboard_page))
        .layer(axum::middleware::from_fn(local_only))
}

fn host_is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().map(|h| format!("[{h}]"))
    } else {
        host.split(':').next().map(str::to_string)
    };
    matches!(
        name.as_deref(),
        Some("localhost") | Some("127.0.0.1") | Some("[::1]")
    )
}

async fn local_only(req: Request, next: Next) -> Response {
    let peer_ok = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|c| c.0.ip().is_loopback());
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !peer_ok || !host_is_loopback(host) {
        return (
            StatusCode::FORBIDDEN,
            "the participation pages are served to this machine only: open http://localhost:<port>/",
        )
            .into_response();
    }
    if req.method() == axum::http::Method::POST {
        if let Some(origin) = req.headers().get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("");
            let origin_host = origin.split("://").nth(1).unwrap_or("");
            if origin_host != host {
                return (StatusCode::FORBIDDEN, "cross-origin form refused").into_response();
            }
        }
    }
    next.run(req).await
}

const STYLE: &str = r#"
:root{--fg:#1d2330;--muted:#5a6272;--accent:#2457c5;--ok:#1e7a3c;--warn:#9a5b00;--bg:#f6f7fb;--card:#fff}
*{box-sizing:border-box}body{font:16px/1.5 system-ui,sans-serif;color:var(--fg);background:var(--bg);margin:0}
header{background:#18213a;color:#fff;padding:.6rem 1.2rem;display:flex;gap:1.5rem;align-items:center;flex-wrap:wrap}
header a{color:#dfe6ff}header a[aria-current=page]{color:#fff;font-weight:700;text-decoration:underline}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;color:#000;padding:.4rem}
main{max-width:52rem;margin:1.2rem auto;padding:0 1rem}
section,.card{background:var(--card);border:1px solid #dde1ea;border-radius:8px;padding:1rem 1.2rem;margin-bottom:1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:0}
label{font-weight:600}.hint{color:var(--muted);font-size:.92rem;margin:.2rem 0 .6rem}
input[type=range]{width:100%}output{font-weight:600}
.row{margin-bottom:1rem}
button{font:inherit;padding:.5rem 1rem;border-radius:6px;border:1px solid #9aa3b5;background:#fff;cursor:pointer}
button.primary{background:var(--accent);color:#fff;border-color:var(--accent)}
button.danger{color:#a1261b;border-color:#a1261b}
button:focus-visible,input:focus-visible,select:focus-visible,a:focus-visible{outline:3px solid #f0b400;outline-offset:2px}
.actions{display:flex;gap:.6rem;flex-wrap:wrap}
.flash{border-left:4px solid var(--ok);background:#eef8f1;padding:.6rem 1rem;margin-bottom:1rem}
.flash.warn{border-color:var(--warn);background:#fff6e6}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #e4e7ee}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dl.kv dt{color:var(--muted)}dl.kv dd{margin:0}
ul.check li{list-style:"✓  "}
.state{font-weight:600}.state.failed,.risk.at-risk{color:#a1261b}.state.suspected,.risk.degraded{color:var(--warn)}.state.alive,.risk.healthy{color:var(--ok)}
.risk{font-weight:600}progress,meter{width:8rem;vertical-align:middle}
.swatch{display:inline-block;width:.8rem;height:.8rem;border-radius:2px;vertical-align:middle;margin-right:.3rem}
.legend{display:flex;gap:1rem;flex-wrap:wrap;font-size:.92rem;margin:.2rem 0 .8rem}
h3{font-size:1rem;margin:.8rem 0 .3rem}
"#;

fn layout(title: &str, current: &str, body: Markup) -> Markup {
    let nav = [
        ("/dashboard", "Dashboard"),
        ("/settings", "Settings"),
        ("/earnings", "Earnings"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Elohim node" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    strong { "Elohim node" }
                    nav aria-label="Main" {
                        @for (href, name) in nav {
                            @if href == current {
                                a href=(href) aria-current="page" { (name) } " "
                            } @else {
                                a href=(href) { (name) } " "
                            }
                        }
                    }
                }
                main #main { (body) }
            }
        }
    }
}

fn page(status: StatusCode, title: &str, current: &str, body: Markup) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        layout(title, current, body),
    )
        .into_response()
}

fn error_page(status: StatusCode, msg: &str) -> Response {
    page(
        status,
        "Problem",
        "",
        html! {
            h1 { "Something needs attention" }
            p.flash.warn role="alert" { (msg) }
            p { a href="/settings" { "Back to the settings" } }
        },
    )
}

impl IntoResponse for FormError {
    fn into_response(self) -> Response {
        error_page(StatusCode::BAD_REQUEST, &self.to_string())
    }
}

fn offer_of(s: &AppState, p: &ParticipationSection) -> OfferInput {
    let cap = s.agent.capacity();
    OfferInput {
        participate: p.custodian_opt_in,
        storage_percent: p.storage_percent,
        bandwidth_percent: p.bandwidth_percent,
        cpu_percent: p.cpu_percent,
        storage_total_gb: cap.storage_gb,
        bandwidth_total_mbps: cap.bandwidth_mbps,
    }
}

fn tier_title(t: registry_core::StewardTier) -> (&'static str, u8) {
    use registry_core::StewardTier::*;
    match t {
        Caretaker => ("Caretaker", 1),
        Guardian => ("Guardian", 2),
        Steward => ("Steward", 3),
        Pioneer => ("Pioneer", 4),
    }
}

/// The benefits calculator's output, also served alone for live updates.
fn benefits_block(e: &BenefitsEstimate, held_bytes: u64, held_shards: usize) -> Markup {
    html! {
        h2 { "Your benefits" }
        @match (&e.tier, &e.benefits) {
            (Some(tier), Some(b)) => {
                @let (name, n) = tier_title(*tier);
                ul.check data-testid="benefits" {
                    li { (b.delivery_speedup) "x faster content delivery from the community cache" }
                    li { span data-testid="points" { (b.points_per_month) } " Shefa points/month earned" }
                    li { "\"" span data-testid="tier" { (name) } "\" steward tier (Tier " (n) ")" }
                    li { "Governance: " (b.governance) "; delivery rewards x" (b.reward_multiplier) " per MB served" }
                }
                @if let Some((next, short)) = &e.next_tier {
                    p.hint {
                        "To reach " (tier_title(*next).0) ": "
                        @for (i, (what, need)) in short.iter().enumerate() {
                            @if i > 0 { ", " }
                            (what) " " (need) "%"
                        }
                        "."
                    }
                }
            }
            _ => {
                p data-testid="benefits" {
                    "Not participating: " span data-testid="tier" { "none" } ". "
                    "No custody, no Shefa points, no faster delivery."
                }
            }
        }
        p.hint {
            "Offering " (format!("{:.1}", e.storage_gb)) " GB storage, "
            (e.bandwidth_mbps) " Mbps bandwidth, " (e.cpu_percent) "% CPU. "
            "This node custodies " (held_shards) " shards (" (human_bytes(held_bytes)) ") now."
        }
    }
}

fn human_bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.2} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} KB", b / 1e3)
    } else {
        format!("{b} B")
    }
}

fn held(s: &AppState) -> (u64, usize) {
    let list = s.custody.store.list().unwrap_or_default();
    (list.iter().map(|r| r.size).sum(), list.len())
}

async fn index(State(s): State<AppState>) -> Response {
    if s.agent.participation().setup_complete {
        Redirect::to("/dashboard").into_response()
    } else {
        Redirect::to("/setup").into_response()
    }
}

async fn setup_page(State(s): State<AppState>) -> Response {
    let rec = ParticipationSection::default();
    let e = estimate_benefits(offer_of(&s, &rec));
    let cap = s.agent.capacity();
    let csrf = csrf_token(&s.api_token);
    let tier = e.tier.map(|t| tier_title(t).0).unwrap_or("none");
    page(
        StatusCode::OK,
        "Welcome",
        "",
        html! {
            h1 { "Welcome to Elohim Network Participation" }
            section aria-labelledby="why" {
                h2 #why { "Help strengthen the network" }
                p {
                    "Your node can help strengthen the network by storing copies of community "
                    "content and supporting other nodes in your region."
                }
                ul.check {
                    li { "You contribute: " (rec.storage_percent) "% storage ("
                        (format!("{:.1}", e.storage_gb)) " GB of " (format!("{:.0}", cap.storage_gb))
                        " GB), " (rec.bandwidth_percent) "% bandwidth (" (e.bandwidth_mbps) " of "
                        (cap.bandwidth_mbps) " Mbps, " (rec.off_peak_start_hour) ":00-"
                        (rec.off_peak_end_hour) ":00), " (rec.cpu_percent) "% CPU" }
                    li { "You receive: faster content delivery ("
                        (e.benefits.map(|b| b.delivery_speedup).unwrap_or(1.0)) "x)" }
                    li { "You earn: Shefa points ("
                        (e.benefits.map(|b| b.points_per_month).unwrap_or(0)) "/month) and reputation as a "
                        (tier) }
                }
                form method="post" action="/setup" {
                    input type="hidden" name="csrf" value=(csrf);
                    div.actions {
                        button.primary type="submit" name="choice" value="recommended" { "Continue with Recommended Settings" }
                        button type="submit" name="choice" value="customise" { "Customize Participation" }
                        button.danger type="submit" name="choice" value="opt_out" { "Opt Out (Not Recommended)" }
                    }
                }
                p.hint { "You can change this at any time on the settings page." }
            }
        },
    )
}

type Fields = HashMap<String, String>;

fn check_csrf(s: &AppState, f: &Fields) -> Result<(), FormError> {
    match f.get("csrf") {
        Some(t) if same(t, &csrf_token(&s.api_token)) => Ok(()),
        _ => Err(FormError::Csrf),
    }
}

async fn setup_submit(State(s): State<AppState>, Form(f): Form<Fields>) -> Response {
    if let Err(e) = check_csrf(&s, &f) {
        return e.into_response();
    }
    match f.get("choice").map(String::as_str) {
        Some("recommended") => {
            let p = ParticipationSection {
                setup_complete: true,
                ..Default::default()
            };
            apply(&s, p, "recommended").await
        }
        Some("customise") => Redirect::to("/settings?done=customise").into_response(),
        Some("opt_out") => {
            let p = ParticipationSection {
                custodian_opt_in: false,
                setup_complete: true,
                ..s.agent.participation()
            };
            apply(&s, p, "opted_out").await
        }
        other => FormError::Choice {
            field: "choice",
            value: other.unwrap_or("").to_string(),
        }
        .into_response(),
    }
}

/// Applies settings, hands custody over when the node stops participating,
/// and redirects to the settings page with what happened.
async fn apply(s: &AppState, p: ParticipationSection, done: &str) -> Response {
    let was_in = s.agent.participation().custodian_opt_in;
    let leaving = was_in && !p.custodian_opt_in;
    match s.agent.apply_participation(p).await {
        // Serving and rebuilds follow the bandwidth now offered.
        Ok(_) => s
            .custody
            .bandwidth
            .set_mbps(s.agent.registration().max_bandwidth_mbps),
        Err(SettingsError::Invalid(e)) => {
            return error_page(StatusCode::BAD_REQUEST, &e.to_string());
        }
        Err(e) => return error_page(StatusCode::BAD_GATEWAY, &e.to_string()),
    }
    let mut done = done.to_string();
    if leaving {
        match s.agent.hand_over().await {
            Ok(r) => {
                s.network.note_repairs(&r);
                tracing::info!(
                    "opted out: {} shards handed over, {} not yet placed",
                    r.replacements.len(),
                    r.unplaced.len()
                );
                done = format!(
                    "{done}&handed={}&unplaced={}",
                    r.replacements.len(),
                    r.unplaced.len()
                );
            }
            Err(e) => {
                tracing::warn!("hand-over after opting out: {e}");
                done = format!("{done}&handed=error");
            }
        }
    }
    let target = if done.starts_with("recommended") {
        format!("/dashboard?done={done}")
    } else {
        format!("/settings?done={done}")
    };
    Redirect::to(&target).into_response()
}

fn number(f: &Fields, field: &'static str, min: f64, max: f64) -> Result<f64, FormError> {
    let raw = f.get(field).map(String::as_str).unwrap_or("");
    match raw.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (min..=max).contains(&v) => Ok(v),
        _ => Err(FormError::Number {
            field,
            value: raw.chars().take(40).collect(),
            min,
            max,
        }),
    }
}

/// Reads the settings form; unchecked boxes are absent, as browsers send them.
fn participation_from(
    f: &Fields,
    base: &ParticipationSection,
) -> Result<ParticipationSection, FormError> {
    let on = |k: &str| f.get(k).is_some_and(|v| v == "on" || v == "true");
    Ok(ParticipationSection {
        custodian_opt_in: on("participate"),
        storage_percent: number(f, "storage_percent", 0.0, 100.0)?,
        bandwidth_percent: number(f, "bandwidth_percent", 0.0, 100.0)?,
        cpu_percent: number(f, "cpu_percent", 0.0, 100.0)?,
        off_peak_start_hour: number(f, "off_peak_start_hour", 0.0, 23.0)? as u8,
        off_peak_end_hour: number(f, "off_peak_end_hour", 0.0, 23.0)? as u8,
        aggregate_metrics_only: on("aggregate_metrics_only"),
        encrypt_custodied_content: on("encrypt_custodied_content"),
        allow_emergency_access: on("allow_emergency_access"),
        setup_complete: base.setup_complete,
    })
}

#[derive(serde::Deserialize, Default)]
struct DoneQuery {
    done: Option<String>,
    handed: Option<String>,
    unplaced: Option<String>,
}

fn flash(q: &DoneQuery) -> Option<Markup> {
    let msg = match q.done.as_deref()? {
        "saved" => "Saved. Your registration on the network was updated.",
        "reset" => "Reset to the recommended settings and saved.",
        "recommended" => "Thank you! Your node now takes part with the recommended settings.",
        "customise" => "Choose what to contribute, then save.",
        "opted_out" => "You opted out: your node takes no new custody.",
        _ => return None,
    };
    let handed = match q.handed.as_deref() {
        Some("error") => Some(
            "Handing over what this node holds did not finish; it will be rebuilt by the network."
                .to_string(),
        ),
        Some(n) => Some(format!(
            "{} shard(s) handed over to other custodians{}.",
            n.parse::<u32>().unwrap_or(0),
            match q.unplaced.as_deref().and_then(|u| u.parse::<u32>().ok()) {
                Some(u) if u > 0 => format!(", {u} waiting for a custodian with room"),
                _ => String::new(),
            }
        )),
        None => None,
    };
    Some(html! {
        div.flash role="status" data-testid="flash" {
            (msg)
            @if let Some(h) = handed { " " (h) }
        }
    })
}

async fn settings_page(State(s): State<AppState>, Query(q): Query<DoneQuery>) -> Response {
    let p = s.agent.participation();
    settings_view(&s, &p, flash(&q), StatusCode::OK)
}

fn slider(id: &'static str, label: &str, value: f64, hint: &str, total: f64, unit: &str) -> Markup {
    let amount = total * value / 100.0;
    html! {
        div.row {
            label for=(id) { (label) }
            input type="range" id=(id) name=(id) min="0" max="100" step="1" value=(value)
                data-total=(total) data-unit=(unit) aria-describedby=(format!("{id}-out"));
            p.hint {
                output id=(format!("{id}-out")) for=(id) {
                    @if unit.is_empty() {
                        (value) "% maximum utilization"
                    } @else {
                        (format!("{amount:.1}")) " " (unit) " / " (format!("{total:.0}")) " " (unit)
                        " available (" (value) "%)"
                    }
                }
                " " (hint)
            }
        }
    }
}

fn hours_select(id: &'static str, label: &str, value: u8) -> Markup {
    html! {
        label for=(id) { (label) } " "
        select id=(id) name=(id) {
            @for h in 0u8..24 {
                option value=(h) selected[h == value] { (format!("{h:02}:00")) }
            }
        }
    }
}

fn settings_view(
    s: &AppState,
    p: &ParticipationSection,
    flash: Option<Markup>,
    status: StatusCode,
) -> Response {
    let cap = s.agent.capacity();
    let e = estimate_benefits(offer_of(s, p));
    let (held_bytes, held_shards) = held(s);
    let csrf = csrf_token(&s.api_token);
    page(
        status,
        "Network participation settings",
        "/settings",
        html! {
            h1 { "Network Participation Settings" }
            @if let Some(f) = flash { (f) }
            form #settings method="post" action="/settings" {
                input type="hidden" name="csrf" value=(csrf);
                section {
                    div.row {
                        input type="checkbox" id="participate" name="participate" checked[p.custodian_opt_in];
                        " "
                        label for="participate" { "Participate in network custodianship" }
                        p.hint { "Help strengthen the decentralized network by storing encrypted copies of community content." }
                    }
                    (slider("storage_percent", "Storage contribution", p.storage_percent,
                        "", cap.storage_gb, "GB"))
                    (slider("bandwidth_percent", "Bandwidth contribution", p.bandwidth_percent,
                        "", cap.bandwidth_mbps as f64, "Mbps"))
                    fieldset {
                        legend { "Off-peak hours (local time) when bandwidth is offered" }
                        (hours_select("off_peak_start_hour", "From", p.off_peak_start_hour))
                        " "
                        (hours_select("off_peak_end_hour", "to", p.off_peak_end_hour))
                    }
                    (slider("cpu_percent", "CPU contribution", p.cpu_percent,
                        "", 0.0, ""))
                }
                section #benefits aria-live="polite" {
                    (benefits_block(&e, held_bytes, held_shards))
                    noscript {
                        button type="submit" name="action" value="preview" { "Recalculate benefits" }
                    }
                }
                section {
                    h2 { "Privacy controls" }
                    div.row {
                        input type="checkbox" id="aggregate_metrics_only" name="aggregate_metrics_only" checked[p.aggregate_metrics_only];
                        " " label for="aggregate_metrics_only" { "Only share aggregate capacity metrics" }
                    }
                    div.row {
                        input type="checkbox" id="encrypt_custodied_content" name="encrypt_custodied_content" checked[p.encrypt_custodied_content];
                        " " label for="encrypt_custodied_content" { "Encrypt all custodied content" }
                    }
                    div.row {
                        input type="checkbox" id="allow_emergency_access" name="allow_emergency_access" checked[p.allow_emergency_access];
                        " " label for="allow_emergency_access" { "Allow emergency access for disaster recovery" }
                    }
                }
                div.actions {
                    button.primary type="submit" name="action" value="save" { "Save Changes" }
                    button type="submit" name="action" value="reset" { "Reset to Defaults" }
                    button.danger type="submit" name="action" value="opt_out" { "Opt Out Completely" }
                }
            }
            script { (PreEscaped(LIVE_SCRIPT)) }
        },
    )
}

/// Refreshes the amounts beside the sliders and asks the server for the
/// calculator block (one rule, in Rust), as a slider moves.
const LIVE_SCRIPT: &str = r#"
(function(){
  var form=document.getElementById('settings'); if(!form) return;
  var timer=null, seq=0;
  function amounts(){
    form.querySelectorAll('input[type=range]').forEach(function(r){
      var out=document.getElementById(r.id+'-out'), unit=r.dataset.unit, v=Number(r.value);
      if(!out) return;
      if(!unit){ out.textContent=v+'% maximum utilization'; return; }
      var total=Number(r.dataset.total);
      out.textContent=(total*v/100).toFixed(1)+' '+unit+' / '+total.toFixed(0)+' '+unit+' available ('+v+'%)';
    });
  }
  function refresh(){
    var data=new URLSearchParams(new FormData(form)); data.delete('csrf'); data.delete('action');
    var mine=++seq;
    fetch('/settings/calculator?'+data.toString(),{credentials:'same-origin'})
      .then(function(r){return r.ok?r.text():null;})
      .then(function(t){ if(t!==null && mine===seq){ document.getElementById('benefits').innerHTML=t; } });
  }
  form.addEventListener('input',function(){ amounts(); clearTimeout(timer); timer=setTimeout(refresh,120); });
  form.addEventListener('change',function(){ amounts(); clearTimeout(timer); timer=setTimeout(refresh,60); });
})();
"#;

async fn calculator_fragment(State(s): State<AppState>, Query(f): Query<Fields>) -> Response {
    let base = s.agent.participation();
    match participation_from(&f, &base) {
        Ok(p) => {
            let (b, n) = held(&s);
            let e = estimate_benefits(offer_of(&s, &p));
            (
                [(header::CACHE_CONTROL, "no-store")],
                benefits_block(&e, b, n),
            )
                .into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn settings_submit(State(s): State<AppState>, Form(f): Form<Fields>) -> Response {
    if let Err(e) = check_csrf(&s, &f) {
        return e.into_response();
    }
    let current = s.agent.participation();
    let action = f.get("action").map(String::as_str).unwrap_or("save");
    match action {
        "reset" => {
            let p = ParticipationSection {
                setup_complete: true,
                ..Default::default()
            };
            apply(&s, p, "reset").await
        }
        "opt_out" => {
            let p = ParticipationSection {
                custodian_opt_in: false,
                setup_complete: true,
                ..current
            };
            apply(&s, p, "opted_out").await
        }
        "save" | "preview" => {
            let p = match participation_from(&f, &current) {
                Ok(p) => p,
                Err(e) => return e.into_response(),
            };
            if action == "preview" {
                return settings_view(&s, &p, None, StatusCode::OK);
            }
            let p = ParticipationSection {
                setup_complete: true,
                ..p
            };
            apply(&s, p, "saved").await
        }
        other => FormError::Choice {
            field: "action",
            value: other.chars().take(40).collect(),
        }
        .into_response(),
    }
}

async fn earnings_page(State(s): State<AppState>) -> Response {
    let earned: Result<NodeEarnings, _> = s
        .agent
        .call_fn::<GetNodeEarnings>(s.agent.node_id.clone())
        .await;
    let body = match earned {
        Ok(e) => html! {
            h1 { "Earnings" }
            section {
                h2 { "Shefa points from served content" }
                p {
                    "Acknowledged: " strong data-testid="earned" { (format_points(e.acknowledged_millipoints)) }
                    " points for " (human_bytes(e.acknowledged_bytes)) " served in "
                    (e.acknowledged_events) " deliveries."
                }
                p.hint {
                    "Awaiting the receiver's acknowledgement (not counted): "
                    (format_points(e.pending_millipoints)) " points in " (e.pending_events) " deliveries. "
                    "Rule: 1 point per MB delivered times your tier's multiplier "
                    "(caretaker 1.0, guardian 1.5, steward 2.5, pioneer 4.0)."
                }
            }
            section {
                h2 { "Recent deliveries" }
                @if e.recent.is_empty() {
                    p { "None yet." }
                } @else {
                    table {
                        caption.hint { "Newest first" }
                        thead { tr { th scope="col" { "Shards" } th scope="col" { "Size" } th scope="col" { "Tier" } th scope="col" { "Points" } th scope="col" { "Status" } } }
                        tbody {
                            @for v in &e.recent {
                                tr {
                                    td {
                                        code { (v.event.shard_hashes.first().and_then(|h| h.get(..12)).unwrap_or("")) "…" }
                                        @if v.event.shard_hashes.len() > 1 { " and " (v.event.shard_hashes.len() - 1) " more" }
                                    }
                                    td { (human_bytes(v.event.bytes)) }
                                    td { (v.event.steward_tier) }
                                    td { (format_points(v.event.points_milli)) }
                                    td { @if v.acknowledged { "acknowledged" } @else { "awaiting acknowledgement" } }
                                }
                            }
                        }
                    }
                }
            }
        },
        Err(e) => html! {
            h1 { "Earnings" }
            p.flash.warn role="alert" { "The network could not be asked right now: " (e.to_string()) }
        },
    };
    page(StatusCode::OK, "Earnings", "/earnings", body)
}

async fn dashboard_page(State(s): State<AppState>, Query(q): Query<DoneQuery>) -> Response {
    // Everything at once; only reads (the network view's through the
    // reader agent), so a page view writes no record.
    let (mine, health, net) = tokio::join!(
        s.agent.call_fn::<GetMyNode>(()),
        s.agent.read_fn::<GetNodeHealth>(s.agent.node_id.clone()),
        s.network.snapshot(&s.agent, &s.custody),
    );
    let (held_bytes, held_shards) = held(&s);
    let p = s.agent.participation();
    let reg = mine.ok().flatten().map(|m| m.registration);
    let cap_bytes = reg
        .as_ref()
        .map(|r| registry_core::capacity::gb_to_bytes(r.max_custody_gb))
        .unwrap_or(0);
    let used_pct = if cap_bytes > 0 {
        held_bytes as f64 / cap_bytes as f64 * 100.0
    } else {
        0.0
    };
    let sent = s.agent.metrics.heartbeats_sent.get();
    let failed = s.agent.metrics.heartbeat_failures.get();
    let body = html! {
        h1 { "Dashboard" }
        @if let Some(f) = flash(&q) { (f) }
        section aria-labelledby="node-h" {
            h2 #node-h { "This node" }
            dl.kv {
                dt { "Node id" } dd { code data-testid="node-id" { (s.agent.node_id) } }
                @if let Some(r) = &reg {
                    dt { "Name" } dd { (r.display_name) }
                    dt { "Region" } dd { (r.region) }
                    dt { "Steward tier" } dd data-testid="dash-tier" { (r.steward_tier) }
                    dt { "Custody" } dd data-testid="dash-optin" { @if r.custodian_opt_in { "participating" } @else { "opted out" } }
                    dt { "Offering" } dd { (format!("{:.1}", r.max_custody_gb)) " GB, " (r.max_bandwidth_mbps) " Mbps, " (r.max_cpu_percent) "% CPU" }
                } @else {
                    dt { "Registration" } dd { "not visible on the network yet" }
                }
            }
            @if !p.setup_complete {
                p { a href="/setup" { "Finish the first-time setup" } }
            }
        }
        section aria-labelledby="health-h" {
            h2 #health-h { "Health" }
            @match &health {
                Ok(h) => {
                    dl.kv {
                        dt { "Liveness" } dd data-testid="liveness" { (liveness_text(&h.liveness)) }
                        dt { "Last heartbeat" } dd {
                            @if let Some(b) = &h.latest_heartbeat { (b.status) ", load " (format!("{:.2}", b.current_load)) " per core" } @else { "none seen yet" }
                        }
                        dt { "Heartbeats sent" } dd data-testid="heartbeats" { (sent) @if failed > 0 { " (" (failed) " failed attempts)" } }
                        dt { "Attestations received (5 min)" } dd data-testid="attestations" {
                            (h.attestations.total) " from " (h.attestations.distinct_attesters) " peers, "
                            (h.attestations.successes) " successful"
                            @if let Some(ms) = h.attestations.avg_response_time_ms { ", " (ms) " ms average" }
                        }
                    }
                }
                Err(e) => { p.flash.warn role="alert" { "Health could not be read: " (e.to_string()) } }
            }
        }
        section aria-labelledby="custody-h" {
            h2 #custody-h { "Custody" }
            label for="custody-use" { "Custody used: " (human_bytes(held_bytes)) " of " (human_bytes(cap_bytes)) " offered (" (held_shards) " shards)" }
            meter #custody-use min="0" max="100" value=(format!("{used_pct:.1}")) { (format!("{used_pct:.1}%")) }
        }
        (network_sections(&net, s.agent.config().http.history_sample_secs))
        p { a href="/settings" { "Change what you contribute" } " · " a href="/earnings" { "See your earnings" } }
    };
    page(StatusCode::OK, "Dashboard", "/dashboard", body)
}

/// Alive nodes listed by name on the dashboard; past this the page gives
/// their count (trouble is always listed in full).
const ALIVE_ROWS: usize = 50;
/// Contents listed on the dashboard (at risk first).
const CONTENT_ROWS: usize = 100;

fn short(id: &str) -> String {
    if id.chars().count() > 14 {
        format!("{}…", id.chars().take(12).collect::<String>())
    } else {
        id.to_string()
    }
}

fn ago(now_ms: i64, then_ms: i64) -> String {
    let s = ((now_ms - then_ms) / 1000).max(0);
    if s < 120 {
        format!("{s} s ago")
    } else if s < 7200 {
        format!("{} min ago", s / 60)
    } else {
        format!("{} h ago", s / 3600)
    }
}

fn silence(n: &crate::http::network_view::RegionNode) -> String {
    match (n.state, n.silent_secs) {
        (NodeState::Alive, _) if n.is_self => "this node".into(),
        (NodeState::Alive, _) => "recently".into(),
        (_, Some(s)) => format!("{s} s ago"),
        (_, None) => "never (no lease)".into(),
    }
}

/// The network as this node sees it: its region's nodes, its own content
/// at risk, repairs, and the history plot.
fn network_sections(n: &NetworkSnapshot, sample_secs: u64) -> Markup {
    html! {
        section aria-labelledby="region-h" {
            h2 #region-h { "Your region: " (n.region) }
            @match &n.nodes {
                Ok(nodes) => {
                    @let (alive, suspected, failed) = region_counts(nodes);
                    p data-testid="region-counts" {
                        span data-testid="region-alive" { (alive) } " alive, "
                        span data-testid="region-suspected" { (suspected) } " suspected, "
                        span data-testid="region-failed" { (failed) } " failed"
                    }
                    p.hint {
                        "Suspected: silent past the failure window, or suspected by one monitor; "
                        "nothing moves yet. Failed: two monitors agree past the grace period, or "
                        "no presence lease: its shards are rebuilt elsewhere."
                    }
                    @let shown: Vec<_> = nodes.iter().filter(|x| x.state != NodeState::Alive || x.is_self)
                        .chain(nodes.iter().filter(|x| x.state == NodeState::Alive && !x.is_self).take(ALIVE_ROWS))
                        .collect();
                    table data-testid="region-nodes" {
                        thead { tr { th scope="col" { "Node" } th scope="col" { "State" } th scope="col" { "Last heard" } th scope="col" { "Tier" } th scope="col" { "Custody" } } }
                        tbody {
                            @for x in &shown {
                                tr data-node=(x.node_id) data-state=(x.state.as_str()) {
                                    td {
                                        @if x.display_name.is_empty() { (short(&x.node_id)) } @else { (x.display_name) }
                                        @if x.is_self { " (this node)" }
                                        br; code title=(x.node_id) { (short(&x.node_id)) }
                                    }
                                    td { span class=(format!("state {}", x.state.as_str())) { (x.state.as_str()) }
                                        @if x.reporters > 0 { " (" (x.reporters) " monitors)" } }
                                    td { (silence(x)) }
                                    td { (x.tier) }
                                    td { @if x.custodian_opt_in { "takes custody" } @else { "opted out" } }
                                }
                            }
                        }
                    }
                    @if shown.len() < nodes.len() {
                        p.hint { "and " (nodes.len() - shown.len()) " more alive nodes." }
                    }
                }
                Err(e) => { p.flash.warn role="alert" data-testid="region-error" { "The region could not be read: " (e) } }
            }
        }
        section aria-labelledby="content-h" {
            h2 #content-h { "Your content" }
            p.hint {
                "What you published, and how many of its shards have a holder. "
                strong { "At risk" } ": fewer shards held by custodians not judged failed than it "
                "needs to be restored (k of n; 1 for a full replica). "
                strong { "Degraded" } ": it can be restored, but some shard has no alive "
                "holder (suspected, failed or unassigned), so a repair is due."
            }
            @match &n.contents {
                Ok(list) if list.is_empty() => {
                    p data-testid="content-none" { "You have not published anything yet." }
                }
                Ok(list) => {
                    @let count = |r: Risk| list.iter().filter(|c| c.risk == r).count();
                    p data-testid="content-summary" {
                        span data-testid="at-risk-count" { (count(Risk::AtRisk)) } " at risk, "
                        span data-testid="degraded-count" { (count(Risk::Degraded)) } " degraded, "
                        span data-testid="healthy-count" { (count(Risk::Healthy)) } " healthy"
                    }
                    table data-testid="contents" {
                        thead { tr { th scope="col" { "Content" } th scope="col" { "Kept as" } th scope="col" { "Shards held" } th scope="col" { "Status" } } }
                        tbody {
                            @for c in list.iter().take(CONTENT_ROWS) {
                                tr data-content=(c.content_id) data-risk=(c.risk.as_str()) {
                                    td {
                                        @if let Some(name) = &c.name { (name) br; }
                                        code title=(c.content_id) { (short(&c.content_id)) }
                                    }
                                    td { (c.strategy.replace('_', " ")) ", needs " (c.needed) " of " (c.shards) }
                                    td {
                                        meter min="0" max=(c.shards) low=(c.needed) high=(c.shards) optimum=(c.shards)
                                            value=(c.usable()) aria-label="shards held" { (c.usable()) " of " (c.shards) }
                                        " " span data-testid="holders" {
                                            (c.alive) " alive"
                                            @if c.suspected > 0 { ", " (c.suspected) " suspected" }
                                            @if c.failed > 0 { ", " (c.failed) " failed" }
                                            @if c.missing > 0 { ", " (c.missing) " unassigned" }
                                        }
                                    }
                                    td { span class=(format!("risk {}", c.risk.as_str().replace(' ', "-"))) { (c.risk.as_str()) } }
                                }
                            }
                        }
                    }
                    @if list.len() > CONTENT_ROWS {
                        p.hint { "and " (list.len() - CONTENT_ROWS) " more (healthiest last)." }
                    }
                }
                Err(e) => { p.flash.warn role="alert" data-testid="content-error" { "Your content could not be read: " (e) } }
            }
        }
        section aria-labelledby="repairs-h" {
            h2 #repairs-h { "Repairs" }
            h3 { "Rebuilding on this node" }
            @if n.rebuilds.is_empty() {
                p data-testid="rebuilds-none" { "No shard is being rebuilt here now." }
            } @else {
                table data-testid="rebuilds" {
                    thead { tr { th scope="col" { "Shard" } th scope="col" { "Progress" } th scope="col" { "Started" } } }
                    tbody {
                        @for (i, r) in n.rebuilds.iter().enumerate() {
                            @let id = format!("rebuild-{i}");
                            tr data-shard=(r.shard_hash) {
                                td { code title=(r.content_id) { (short(&r.content_id)) } " #" (r.shard_index) }
                                td {
                                    progress #(id) max=(r.needed) value=(r.fetched.min(r.needed)) { (r.fetched) " of " (r.needed) }
                                    " " label for=(id) {
                                        @if r.fetched >= r.needed { "rebuilding from " (r.needed) " shards" }
                                        @else { (r.fetched) " of " (r.needed) " shards fetched" }
                                        " (" (human_bytes(r.shard_bytes)) " each)"
                                    }
                                }
                                td { (ago(n.now_ms, r.started_ms)) }
                            }
                        }
                    }
                }
            }
            h3 { "Queued by this node" }
            @if n.queued.is_empty() {
                p data-testid="queued-none" { "None since the sidecar started." }
            } @else {
                table data-testid="queued" {
                    thead { tr { th scope="col" { "When" } th scope="col" { "Lost by" } th scope="col" { "Shard" } th scope="col" { "Outcome" } } }
                    tbody {
                        @for q in &n.queued {
                            tr {
                                td { (ago(n.now_ms, q.last_ms)) }
                                td { code title=(q.failed_node) { (short(&q.failed_node)) } }
                                td { code title=(q.content_id) { (short(&q.content_id)) } " #" (q.shard_index) }
                                td data-testid="queued-outcome" {
                                    @match &q.outcome {
                                        RepairOutcome::Queued { to } => { "re-homed on " code title=(to) { (short(to)) } }
                                        RepairOutcome::Unplaced { reason } => { "not placed: " (reason) }
                                    }
                                    @if q.runs > 1 { " (" (q.runs) " runs since " (ago(n.now_ms, q.first_ms)) ")" }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="history-h" {
            h2 #history-h { "History" }
            p.hint {
                "One sample every " (sample_secs) " s (the last " (crate::http::network_view::HISTORY_SAMPLES)
                "), kept in memory since the sidecar started; the last point is the time since the last sample."
            }
            (history_plots(n))
        }
    }
}

fn swatch(color: &str) -> Markup {
    html! { span.swatch style=(format!("background:{color}")) aria-hidden="true" {} }
}

fn history_plots(n: &NetworkSnapshot) -> Markup {
    let h = &n.history;
    let from = h.first().map_or(n.now_ms, |s| s.at_ms - s.span_ms);
    let latency = [
        Series {
            name: "beat".into(),
            color: "#2457c5",
            points: h.iter().map(|s| (s.at_ms, s.beat_ms)).collect(),
        },
        Series {
            name: "lease".into(),
            color: "#9a5b00",
            points: h.iter().map(|s| (s.at_ms, s.lease_ms)).collect(),
        },
    ];
    let bytes = [
        Series {
            name: "in".into(),
            color: "#1e7a3c",
            points: h.iter().map(|s| (s.at_ms, Some(s.rates().0))).collect(),
        },
        Series {
            name: "out".into(),
            color: "#a1261b",
            points: h.iter().map(|s| (s.at_ms, Some(s.rates().1))).collect(),
        },
    ];
    let last = |pick: &dyn Fn(&crate::http::network_view::Sample) -> Option<f64>| {
        h.iter().rev().find_map(pick)
    };
    let ms = |v: Option<f64>| v.map_or("none yet".to_string(), |v| format!("{v:.1} ms"));
    html! {
        h3 { "Heartbeat round time" }
        (plot_svg("plot-latency", "Heartbeat round time, milliseconds", from, n.now_ms, &latency, &|v| format!("{v:.1} ms")))
        p.legend {
            span { (swatch(latency[0].color)) "beat to the monitors: " (ms(last(&|s| s.beat_ms))) }
            span { (swatch(latency[1].color)) "lease round: " (ms(last(&|s| s.lease_ms))) }
        }
        h3 { "Shard bytes moved" }
        (plot_svg("plot-bytes", "Shard bytes moved per second", from, n.now_ms, &bytes, &|v| format!("{}/s", human_bytes(v as u64))))
        p.legend data-testid="moved" {
            span { (swatch(bytes[0].color)) "in: " span data-testid="moved-in" { (human_bytes(n.moved.0)) } " since start" }
            span { (swatch(bytes[1].color)) "out: " span data-testid="moved-out" { (human_bytes(n.moved.1)) } " since start" }
        }
    }
}

fn liveness_text(l: &registry_core::heartbeat::Liveness) -> String {
    use registry_core::heartbeat::Liveness::*;
    match l {
        Alive { silent_secs } => format!("alive (last heard {silent_secs} s ago)"),
        Suspected { silent_secs } => format!("suspected (silent {silent_secs} s)"),
        Failed {
            silent_secs: Some(s),
        } => format!("failed (silent {s} s)"),
        Failed { silent_secs: None } => "no heartbeat seen yet".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_only() {
        for h in [
            "localhost",
            "localhost:8787",
            "127.0.0.1:80",
            "[::1]:8787",
            "[::1]",
        ] {
            assert!(host_is_loopback(h), "{h}");
        }
        for h in [
            "evil.example",
            "localhost.evil.example:8787",
            "192.168.1.2:8787",
            "",
            "[::2]:1",
        ] {
            assert!(!host_is_loopback(h), "{h}");
        }
    }

    #[test]
    fn csrf_is_derived_and_compared_exactly() {
        let t = csrf_token("secret");
        assert_eq!(t.len(), 64);
        assert_ne!(t, csrf_token("other"));
        assert!(!t.contains("secret"));
        assert!(same(&t, &csrf_token("secret")));
        assert!(!same(&t, &t[..63]));
    }

    fn form(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_form_is_read_with_clear_errors() {
        let base = ParticipationSection::default();
        let ok = form(&[
            ("participate", "on"),
            ("storage_percent", "25"),
            ("bandwidth_percent", "45"),
            ("cpu_percent", "20"),
            ("off_peak_start_hour", "23"),
            ("off_peak_end_hour", "7"),
            ("encrypt_custodied_content", "on"),
        ]);
        let p = participation_from(&ok, &base).unwrap();
        assert!(p.custodian_opt_in && p.encrypt_custodied_content);
        assert!(!p.aggregate_metrics_only && !p.allow_emergency_access);
        assert_eq!((p.storage_percent, p.off_peak_start_hour), (25.0, 23));

        let mut bad = ok.clone();
        bad.insert("storage_percent".into(), "150".into());
        assert_eq!(
            participation_from(&bad, &base).unwrap_err().to_string(),
            "storage_percent: \"150\" is not a number from 0 to 100"
        );
        bad.insert("storage_percent".into(), "NaN".into());
        assert!(participation_from(&bad, &base).is_err());
        let mut bad = ok.clone();
        bad.remove("off_peak_end_hour");
        assert!(matches!(
            participation_from(&bad, &base),
            Err(FormError::Number {
                field: "off_peak_end_hour",
                ..
            })
        ));
        // Unchecked means out.
        let mut out = ok;
        out.remove("participate");
        assert!(!participation_from(&out, &base).unwrap().custodian_opt_in);
    }

    fn snapshot() -> NetworkSnapshot {
        use crate::http::network_view::*;
        NetworkSnapshot {
            region: "eu-west".into(),
            nodes: Err("the region's nodes: no answer within 10 s".into()),
            contents: Ok(vec![ContentHealth {
                content_id: "c".repeat(64),
                name: Some("<b>notes</b>.txt".into()),
                strategy: "erasure_coded".into(),
                needed: 2,
                shards: 3,
                alive: 1,
                suspected: 0,
                failed: 2,
                missing: 0,
                risk: Risk::AtRisk,
            }]),
            rebuilds: vec![
                Rebuild {
                    content_id: "d".repeat(64),
                    shard_index: 2,
                    shard_hash: "e".repeat(64),
                    shard_bytes: 2_000_000,
                    needed: 3,
                    fetched: 1,
                    started_ms: 1_000,
                },
                Rebuild {
                    content_id: "f".repeat(64),
                    shard_index: 0,
                    shard_hash: "a".repeat(64),
                    shard_bytes: 10,
                    needed: 1,
                    fetched: 1,
                    started_ms: 1_000,
                },
            ],
            queued: vec![],
            history: vec![],
            now_ms: 31_000,
            moved: (0, 1_500),
        }
    }

    #[test]
    fn the_network_shows_progress_risk_and_errors_as_text() {
        let html = network_sections(&snapshot(), 60).into_string();
        // A read that failed is said, not a panic or an empty table.
        assert!(
            html.contains(
                "role=\"alert\" data-testid=\"region-error\">The region could not be read: \
                 the region's nodes: no answer within 10 s"
            ),
            "{html}"
        );
        // Repairs in progress are real progress bars with their counts.
        assert!(
            html.contains("<progress id=\"rebuild-0\" max=\"3\" value=\"1\">"),
            "{html}"
        );
        assert!(
            html.contains("1 of 3 shards fetched (2.00 MB each)"),
            "{html}"
        );
        assert!(html.contains("<progress id=\"rebuild-1\" max=\"1\" value=\"1\">"));
        assert!(html.contains("rebuilding from 1 shards"));
        assert!(html.contains("30 s ago"));
        // Content at risk, with its counts, its name escaped.
        assert!(html.contains("data-risk=\"at risk\""), "{html}");
        assert!(html.contains("<span data-testid=\"at-risk-count\">1</span>"));
        assert!(html.contains("1 alive, 2 failed"));
        assert!(html.contains("&lt;b&gt;notes&lt;/b&gt;.txt") && !html.contains("<b>notes"));
        assert!(html.contains("value=\"1\"") && html.contains("low=\"2\""));
        // No samples yet: said in words; the bytes moved are still given.
        assert!(html.contains("no samples yet"));
        assert!(
            html.contains("<span data-testid=\"moved-out\">1.5 KB</span>"),
            "{html}"
        );
        assert!(html.contains("None since the sidecar started."));
    }

    #[test]
    fn values_are_escaped() {
        let e = estimate_benefits(OfferInput {
            participate: true,
            storage_percent: 10.0,
            bandwidth_percent: 20.0,
            cpu_percent: 15.0,
            storage_total_gb: 500.0,
            bandwidth_total_mbps: 100,
        });
        let html = benefits_block(&e, 0, 0).into_string();
        assert!(html.contains("Guardian") && html.contains("150"), "{html}");
        let page = layout("<script>", "", html! { p { ("<b>x</b>") } }).into_string();
        assert!(!page.contains("<b>x</b>") && page.contains("&lt;b&gt;x&lt;/b&gt;"));
        assert!(page.contains("<title>&lt;script&gt;"));
    }
}
