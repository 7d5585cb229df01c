//! One case, run against the reference UA: the world comes up, the device carries out the
//! steps, the world goes down, and the oracle judges the timeline.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::record::Recorder;
use crate::checks::{Context, Verdict, judge_with};
use crate::dns::DnsLimits;
use crate::model::case::Case;
use crate::model::lab::Lab;
use crate::model::profile::Profile;
use crate::model::steps::{Between, Step};
use crate::model::zone::ZoneSet;
use crate::sip::uri::SipUri;
use crate::timeline::{EventKind, Timeline};
use crate::ua::agent::{Method, Outcome};
use crate::ua::io::{Progress, Ua};
use crate::ua::{Faults, UaConfig};
use crate::world::{World, WorldOptions};

/// How a run treats every case.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub profile: Profile,
    pub seed: u64,
    pub faults: Faults,
    pub dns_listen: SocketAddr,
    pub dns_limits: DnsLimits,
    pub device: DeviceUnderTest,
}

/// Who carries out the steps.
#[derive(Clone, Debug)]
pub enum DeviceUnderTest {
    /// srvlab's reference UA, in process.
    Reference,
    /// A real device on the lab's network, driven by the lab's trigger.
    External(Arc<Lab>),
}

/// What became of one case.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CaseResult {
    pub id: String,
    pub title: String,
    pub file: String,
    pub covers: Vec<String>,
    /// Wall time the case took, in seconds.
    pub seconds: f64,
    /// Why the case could not be carried out (then there are no verdicts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the device was configured with beyond the run's profile (the case's `profile:`),
    /// e.g. "t2 = 4·T1 = 80ms"; for a real device, how its declared values meet the case's
    /// wishes ("t2: the case asks for 4·T1 = 2s; the device's profile declares 4s, which is
    /// what is judged …").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<String>,
    /// What the device got, request by request ("INVITE → 200 from 127.0.0.114:5060").
    pub outcomes: Vec<String>,
    pub verdicts: Vec<Verdict>,
    /// Traffic on the timeline that was not judged as not the device's (lab runs), by
    /// address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_out: Option<String>,
    /// Paths relative to the run folder.
    pub timeline: String,
    pub capture: String,
}

impl CaseResult {
    /// A case that could not be carried out at all.
    pub fn not_run(case: &Case, why: &str) -> Self {
        Self {
            id: case.id.clone(),
            title: case.title.clone(),
            file: case.file.path.clone(),
            covers: case.covers.clone(),
            seconds: 0.0,
            error: Some(why.to_string()),
            settings: Vec::new(),
            outcomes: Vec::new(),
            verdicts: Vec::new(),
            left_out: None,
            timeline: String::new(),
            capture: String::new(),
        }
    }
}

/// The reference UA's configuration for a device profile.
pub fn ua_config(profile: &Profile, seed: u64, faults: &Faults) -> UaConfig {
    let defaults = UaConfig::default();
    UaConfig {
        t1: profile.t1,
        t2: profile.t2,
        dirty_host_ttl: profile.dirty_host_ttl,
        transports: profile.transports.clone(),
        failover_codes: profile.failover_codes.clone(),
        failover_after: profile.failover_after,
        retry_after_failed_register: profile
            .retry_after_failed_register
            .unwrap_or(defaults.retry_after_failed_register),
        failback_mode: profile.failback_mode,
        failback_timeout: profile.failback_window(),
        address_families: profile.address_families.clone(),
        seed,
        faults: faults.clone(),
        ..defaults
    }
}

/// What the judged timeline leaves out as not the device's: packets of other hosts, by
/// address and kind, e.g. "127.0.0.2: 4 DNS queries, 2 SIP requests".
fn left_out(others: &[crate::timeline::Event]) -> Option<String> {
    use std::collections::BTreeMap;
    let mut by_address: BTreeMap<std::net::IpAddr, BTreeMap<&str, usize>> = BTreeMap::new();
    for event in others {
        let Some(ip) = super::external::traffic_source(event) else {
            continue;
        };
        let kind = match &event.kind {
            EventKind::DnsQuery(_) => "DNS quer(ies)",
            EventKind::SipReceived(m) if m.summary.method.is_some() => "SIP request(s)",
            EventKind::Refused(_) => "refused send(s)",
            EventKind::TcpConnected(_) => "TCP connection(s)",
            _ => continue,
        };
        *by_address.entry(ip).or_default().entry(kind).or_default() += 1;
    }
    if by_address.is_empty() {
        return None;
    }
    let parts: Vec<String> = by_address
        .iter()
        .map(|(ip, kinds)| {
            let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
            format!("{ip}: {}", kinds.join(", "))
        })
        .collect();
    Some(format!(
        "not judged, as not from the device's addresses: {} (if one of them is the device's, add it to the lab's device.other_addresses)",
        parts.join("; ")
    ))
}

/// A wait in the dirty-host TTL of a device that keeps none: nothing to wait out. The rest of
/// the case still applies (issue 14: seed-crash was wholly not applicable, though L8, F1 and
/// T1 judge every device); D1 and D2 say themselves that they are not.
pub fn no_wait(wait: &crate::model::steps::Wait) -> String {
    format!("`wait {wait}` skipped: the device's profile declares no dirty-host TTL")
}

/// Runs `case`, writing its timeline and capture into `dir` (relative paths in the result are
/// relative to `run_dir`).
pub async fn run_case(case: &Case, options: &RunOptions, dir: &Path, run_dir: &Path) -> CaseResult {
    let started = Instant::now();
    let relative = |path: &Path| {
        path.strip_prefix(run_dir)
            .unwrap_or(path)
            .display()
            .to_string()
    };
    let mut result = CaseResult {
        id: case.id.clone(),
        title: case.title.clone(),
        file: case.file.path.clone(),
        covers: case.covers.clone(),
        seconds: 0.0,
        error: None,
        settings: case.profile.describe(options.profile.t1),
        outcomes: Vec::new(),
        verdicts: Vec::new(),
        left_out: None,
        timeline: relative(&dir.join("timeline.jsonl")),
        capture: relative(&dir.join("capture.pcap")),
    };
    // The device as this case needs it configured: the reference UA gets these settings, and
    // the oracle judges against them. A real device is what it is: the checks judge what its
    // profile declares, and the report says how that differs from the case's wish (issue 14:
    // a case's shorter T2 failed baresip, whose T2 cannot be set).
    let options = &match &options.device {
        DeviceUnderTest::Reference => match case.profile.apply(&options.profile) {
            Ok(profile) => RunOptions {
                profile,
                ..options.clone()
            },
            Err(err) => {
                result.error = Some(err.to_string());
                return result;
            }
        },
        DeviceUnderTest::External(_) => {
            result.settings = case.profile.against(&options.profile);
            options.clone()
        }
    };
    let unmet: Vec<String> = case
        .requires
        .iter()
        .filter(|r| !r.met_by(&options.profile))
        .map(ToString::to_string)
        .collect();
    if !unmet.is_empty() {
        let why = format!(
            "the case needs {}, which the profile {} does not declare",
            unmet.join(" and "),
            options.profile.name
        );
        result.verdicts = every_check(case, crate::checks::Status::NotApplicable, &why);
        result.timeline = String::new();
        result.capture = String::new();
        return result;
    }
    // A step the lab's trigger cannot make the device do: the case cannot be run as written,
    // which is the lab's limit, not the device's failure to act (issue 14: one missing action
    // made every check of a case inconclusive though the device acted on every other step).
    if let DeviceUnderTest::External(lab) = &options.device {
        let missing = lab.trigger.missing_actions(&case.steps);
        if !missing.is_empty() {
            let why = lab.trigger.lacks(&missing);
            result.verdicts = every_check(case, crate::checks::Status::NotApplicable, &why);
            result.timeline = String::new();
            result.capture = String::new();
            return result;
        }
    }
    // On a lab network the case's addresses become the lab's.
    let moved;
    let case = match &options.device {
        DeviceUnderTest::Reference => case,
        DeviceUnderTest::External(lab) => match lab.apply(case) {
            Ok(case) => {
                moved = case;
                &moved
            }
            Err(err) => {
                result.error = Some(err.to_string());
                return result;
            }
        },
    };
    let timeline = Timeline::new();
    let recorder = match std::fs::create_dir_all(dir)
        .map_err(|e| e.to_string())
        .and_then(|()| Recorder::attach(dir, &timeline, false).map_err(|e| e.to_string()))
    {
        Ok(recorder) => recorder,
        Err(err) => {
            result.error = Some(format!("cannot record into {}: {err}", dir.display()));
            return result;
        }
    };
    let world_options = WorldOptions {
        dns_listen: match &options.device {
            DeviceUnderTest::Reference => vec![options.dns_listen],
            DeviceUnderTest::External(lab) => lab.dns.clone(),
        },
        dns_given_by: match &options.device {
            DeviceUnderTest::Reference => "--dns".into(),
            DeviceUnderTest::External(lab) => format!("`dns:` in {}", lab.file.path),
        },
        dns_limits: options.dns_limits,
        tls: match &options.device {
            DeviceUnderTest::Reference => None,
            DeviceUnderTest::External(lab) => lab.tls.clone(),
        },
        connection_limits: Default::default(),
    };
    // Why the device could not be judged (it never acted): the checks are then inconclusive.
    let mut missed = Vec::new();
    match World::start(case, &world_options, timeline.clone()).await {
        Ok(world) => {
            if let Some(pki) = world.pki() {
                write_ca(dir, pki, &timeline);
            }
            let world = Arc::new(world);
            match &options.device {
                DeviceUnderTest::Reference => {
                    match act_on_own_thread(case, options, &world).await {
                        Ok(outcomes) => result.outcomes = outcomes,
                        Err(err) => result.error = Some(err),
                    }
                }
                DeviceUnderTest::External(lab) => {
                    let acted = super::external::act(case, options, &world, lab).await;
                    result.outcomes = acted.outcomes;
                    missed = acted.missed;
                }
            }
            // Late packets (retransmitted responses, ACKs) still belong to the case.
            let linger = options.profile.t1 * 4;
            tokio::time::sleep(linger).await;
            // The checks read how long the device was watched from the last event: a device
            // that went quiet (gave up) was seen doing nothing until here.
            timeline.record(EventKind::Stopped {
                text: format!(
                    "srvlab stopped watching, {} ms after the last step",
                    linger.as_millis()
                ),
            });
            let stopped = match Arc::try_unwrap(world) {
                Ok(world) => world.shutdown().await.map_err(|err| err.to_string()),
                Err(_) => Err("the device still held it".to_string()),
            };
            if let Err(err) = stopped {
                timeline.record(EventKind::Note {
                    text: format!("the world did not stop cleanly: {err}"),
                });
            }
        }
        Err(err) => result.error = Some(format!("the world did not come up: {err}")),
    }
    if let Err(err) = recorder.finish() {
        timeline.record(EventKind::Note {
            text: format!("the capture is incomplete: {err}"),
        });
    }
    let mut events = timeline.events();
    // On a lab network only the device's own traffic is judged.
    if let DeviceUnderTest::External(lab) = &options.device {
        let (kept, others): (Vec<_>, Vec<_>) = events
            .into_iter()
            .partition(|event| super::external::concerns_device(event, &lab.device));
        events = kept;
        // Traffic left out is said, by address: a device that asks DNS from an address the
        // lab does not name looks as if it never resolved (issue 14), and this shows why.
        if let Some(note) = left_out(&others) {
            timeline.record(EventKind::Note { text: note.clone() });
            result.left_out = Some(note);
        }
    }
    missed.extend(untrusted_servers(case, &events));
    if result.error.is_none() && !missed.is_empty() {
        let why = format!("the device could not be judged: {}", missed.join("; "));
        result.verdicts = every_check(case, crate::checks::Status::Inconclusive, &why);
    } else if result.error.is_none() {
        let context = Context {
            profile: &options.profile,
            zones: &case.zones,
            servers: &case.servers,
            events: &events,
        };
        for id in &case.checks {
            let params = case.check_params.get(id).cloned().unwrap_or_default();
            match judge_with(id, &context, &params) {
                Ok(verdict) => result.verdicts.push(verdict),
                // Case files are validated against the checks the oracle knows; this would be
                // a case built in code.
                Err(err) => result.error = Some(err.to_string()),
            }
        }
    }
    result.seconds = started.elapsed().as_secs_f64();
    result
}

/// A real device that is to connect over TLS must trust the CA of the servers' certificates:
/// it goes beside the capture as ca.pem (the lab's CA file as it is, or the run's), and the
/// timeline says where each host's certificate came from.
fn write_ca(dir: &Path, pki: &crate::tls::TestPki, timeline: &Timeline) {
    let sources = pki.sources();
    let listed = |wanted: crate::tls::CertSource| {
        sources
            .iter()
            .filter(|(_, source)| *source == wanted)
            .map(|(host, _)| host.as_str())
            .collect::<Vec<_>>()
    };
    for source in [
        crate::tls::CertSource::LabCa,
        crate::tls::CertSource::RunCa,
        crate::tls::CertSource::Fixed,
    ] {
        let hosts = listed(source);
        if !hosts.is_empty() {
            timeline.record(EventKind::Note {
                text: format!("tls: {}: {source}", hosts.join(", ")),
            });
        }
    }
    let fixed = listed(crate::tls::CertSource::Fixed);
    if !fixed.is_empty() && !pki.ca_is_labs() {
        timeline.record(EventKind::Note {
            text: format!(
                "tls: the CA of the fixed certificate(s) of {} is not in ca.pem: the lab names no CA file",
                fixed.join(", ")
            ),
        });
    }
    match pki.ca_pem() {
        Some(ca_pem) => {
            if let Err(err) = std::fs::write(dir.join("ca.pem"), ca_pem) {
                timeline.record(EventKind::Note {
                    text: format!("cannot write ca.pem: {err}"),
                });
            }
        }
        None => {
            timeline.record(EventKind::Note {
                text: "no ca.pem: every host has the lab's fixed certificate, from a CA the lab names no file for".into(),
            });
        }
    }
}

/// The same verdict for every check of a case, when none could be judged.
fn every_check(case: &Case, status: crate::checks::Status, why: &str) -> Vec<Verdict> {
    case.checks
        .iter()
        .map(|id| {
            let level = crate::checks::level_of(id).unwrap_or(crate::checks::Level::Info);
            Verdict::new(id, level, status, why.to_string())
        })
        .collect()
}

/// Runs the reference UA on a thread and runtime of its own, as a device is a machine of its
/// own: when other cases judge long timelines or write captures on the shared runtime, the
/// device's timers still fire on time (T1 at 20 ms leaves ±2 ms).
async fn act_on_own_thread(
    case: &Case,
    options: &RunOptions,
    world: &Arc<World>,
) -> Result<Vec<String>, String> {
    let (case, options, world) = (Arc::new(case.clone()), options.clone(), world.clone());
    let (done, outcome) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("device {}", case.id))
        .spawn(move || {
            raise_device_priority();
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|err| format!("no runtime for the device: {err}"))
                .and_then(|runtime| {
                    let dns = world.dns().addr();
                    runtime.block_on(async {
                        let watchdog =
                            tokio::spawn(super::watchdog::watch(world.timeline().clone()));
                        let acted = act(&case, &options, &world, dns).await;
                        watchdog.abort();
                        acted
                    })
                });
            // Dropped here, so the world is the runner's alone again once the result is in.
            drop(world);
            let _ = done.send(result);
        })
        .map_err(|err| format!("no thread for the device: {err}"))?;
    outcome
        .await
        .map_err(|_| "the device's thread ended without a result".to_string())?
}

/// The device's nice value when srvlab may set it (root or CAP_SYS_NICE).
const DEVICE_NICE: i32 = -10;

/// Gives the calling thread (the device's) precedence over srvlab's own work: a device is a
/// machine of its own. Without the privilege it keeps the normal priority. What the host still
/// delays (a busy or virtualised machine can pause any thread for milliseconds), the device
/// reports (`Progress::HostDelay`) and its watchdog records (`EventKind::HostStall`), and the
/// timing checks do not hold it against the device.
fn raise_device_priority() {
    // SAFETY: gettid and setpriority take and return plain integers and touch no memory of
    // ours. On Linux the nice value is per thread, so PRIO_PROCESS with this thread's id
    // changes only this thread.
    let _ = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, DEVICE_NICE)
    };
}

/// Carries out the case's steps with the reference UA.
/// The reference UA, trusting the world's test CA when a server listens on tls.
fn reference_ua(
    world: &World,
    config: UaConfig,
    user: &str,
    dns: SocketAddr,
) -> Result<Ua, String> {
    let check = config.faults.certificate_check();
    let ua = Ua::new(config, user, dns);
    match world.pki() {
        Some(pki) => Ok(ua.with_tls(pki.client_config(check).map_err(|e| e.to_string())?)),
        None => Ok(ua),
    }
}

async fn act(
    case: &Case,
    options: &RunOptions,
    world: &World,
    dns: SocketAddr,
) -> Result<Vec<String>, String> {
    let uri =
        SipUri::parse(&case.uri).map_err(|why| format!("device uri `{}`: {why}", case.uri))?;
    let aor =
        SipUri::parse(&case.aor).map_err(|why| format!("device aor `{}`: {why}", case.aor))?;
    let user = aor.user.clone().unwrap_or_else(|| "alice".into());
    let mut device = Device {
        ua: reference_ua(
            world,
            ua_config(&options.profile, options.seed, &options.faults),
            &user,
            dns,
        )?,
        uri,
        aor,
        outcomes: Vec::new(),
        timeline: world.timeline().clone(),
    };
    for step in &case.steps {
        device.step(step, case, options, world, dns, 0).await?;
    }
    Ok(device.outcomes)
}

struct Device {
    ua: Ua,
    uri: SipUri,
    aor: SipUri,
    outcomes: Vec<String>,
    /// The case's timeline, for what the host did to the device (see `EventKind::HostDelay`).
    timeline: Timeline,
}

impl Device {
    async fn request(&mut self, method: Method) {
        let uri = match method {
            Method::Register => self.aor.clone(),
            Method::Invite | Method::Options => self.uri.clone(),
        };
        let timeline = self.timeline.clone();
        let outcome = self
            .ua
            .run(method, uri, |progress| {
                if let Progress::HostDelay { late } = progress {
                    timeline.record(EventKind::HostDelay {
                        late_ns: u64::try_from(late.as_nanos()).unwrap_or(u64::MAX),
                    });
                }
            })
            .await;
        self.outcomes.push(format!(
            "{} → {}",
            method.as_str(),
            match outcome {
                Outcome::Succeeded { status, target } | Outcome::Rejected { status, target } => {
                    format!("{status} from {} over {}", target.addr, target.transport)
                }
                Outcome::Failed { why } => format!("failed: {why}"),
            }
        ));
    }

    /// One step; `depth` guards against trials within trials within trials.
    fn step<'a>(
        &'a mut self,
        step: &'a Step,
        case: &'a Case,
        options: &'a RunOptions,
        world: &'a World,
        dns: SocketAddr,
        depth: u32,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            match step {
                Step::Register => self.request(Method::Register).await,
                Step::Call => self.request(Method::Invite).await,
                Step::Options => self.request(Method::Options).await,
                Step::Registers(n) => {
                    for _ in 0..*n {
                        self.request(Method::Register).await;
                    }
                }
                Step::Calls(n) => {
                    for _ in 0..*n {
                        self.request(Method::Invite).await;
                    }
                }
                Step::Wait(wait) => match wait.resolve(&options.profile) {
                    Some(duration) => tokio::time::sleep(duration).await,
                    None => {
                        world.timeline().record(EventKind::Note {
                            text: no_wait(wait),
                        });
                    }
                },
                Step::Step(name) => world.step(name),
                Step::Trials(trials) if trials.between == Between::FreshDevice => {
                    if depth > 2 {
                        return Err("trials nested more than twice".into());
                    }
                    for trial in 0..u64::from(trials.count) {
                        // A fresh device per trial: cold DNS cache, no dirty hosts, its own
                        // draws (seed + trial) so trials are independent.
                        let seed = options.seed.wrapping_mul(1_000_003).wrapping_add(trial);
                        let mut fresh = Device {
                            ua: reference_ua(
                                world,
                                ua_config(&options.profile, seed, &options.faults),
                                &self.aor.user.clone().unwrap_or_else(|| "alice".into()),
                                dns,
                            )?,
                            uri: self.uri.clone(),
                            aor: self.aor.clone(),
                            outcomes: Vec::new(),
                            timeline: self.timeline.clone(),
                        };
                        for inner in &trials.steps {
                            fresh
                                .step(inner, case, options, world, dns, depth + 1)
                                .await?;
                        }
                        self.outcomes.append(&mut fresh.outcomes);
                    }
                }
                Step::Trials(trials) => {
                    if depth > 2 {
                        return Err("trials nested more than twice".into());
                    }
                    for trial in 0..trials.count {
                        if trial > 0 {
                            tokio::time::sleep(cache_lifetime(&world.dns().zones())).await;
                        }
                        for inner in &trials.steps {
                            self.step(inner, case, options, world, dns, depth + 1)
                                .await?;
                        }
                    }
                }
                Step::Zone(path) => switch_zone(case, world, path)?,
            }
            Ok(())
        })
    }
}

/// A `zone:` step: the DNS server serves the case's zone file `path` from now on, and the
/// timeline says so. Both the reference UA's and a real device's runs take their steps here.
pub fn switch_zone(case: &Case, world: &World, path: &str) -> Result<(), String> {
    let zones = case
        .zone_changes
        .get(path)
        .cloned()
        .ok_or_else(|| format!("`zone: {path}`: the case was not loaded from its file"))?;
    world
        .dns()
        .replace_zones(zones)
        .map_err(|err| format!("`zone: {path}`: {err}"))?;
    world.timeline().record(EventKind::Note {
        text: format!("dns: now serving the zone {path}"),
    });
    Ok(())
}

/// How long until everything a resolver could have cached from `zones` has expired, in C2's
/// reading (the longest TTL or negative TTL with its grace), plus half a second.
pub fn cache_lifetime(zones: &ZoneSet) -> Duration {
    let longest = zones
        .zones
        .iter()
        .flat_map(|zone| {
            zone.records
                .iter()
                .map(|r| r.ttl)
                .chain([zone.ttl, zone.negative_ttl])
        })
        .max()
        .unwrap_or(0);
    crate::checks::expiry::expired_after(longest) + Duration::from_millis(500)
}

/// Where a case's files go inside a run folder.
pub fn case_dir(run_dir: &Path, id: &str) -> PathBuf {
    run_dir.join("cases").join(id)
}

/// Servers the case meant to complete TLS with (no `tls: {fail: …}`) whose handshake with the
/// device failed: the device does not trust the CA they present (or shares nothing with
/// srvlab's TLS), so the case did not run as written and its checks say nothing of failover.
fn untrusted_servers(case: &Case, events: &[crate::timeline::Event]) -> Vec<String> {
    let mut servers: Vec<&str> = Vec::new();
    let mut found = Vec::new();
    for event in events {
        let EventKind::TlsFailed(failed) = &event.kind else {
            continue;
        };
        if servers.contains(&failed.server.as_str()) {
            continue;
        }
        let meant_to_work = case
            .servers
            .iter()
            .any(|s| s.host.to_ascii() == failed.server && s.tls.fail.is_none());
        if meant_to_work {
            servers.push(&failed.server);
            found.push(format!(
                "the TLS handshake with {} failed ({}) although its certificate is one the device is meant to trust: give the device the CA in ca.pem (a lab names its own with `tls:`)",
                failed.server, failed.reason
            ));
        }
    }
    found
}

/// A grace period long enough for the world's sockets to close between cases.
pub const BETWEEN_CASES: Duration = Duration::from_millis(50);

#[cfg(test)]
mod left_out_tests {
    use super::*;
    use crate::model::lab::LabDevice;
    use crate::timeline::{Event, Timeline, Transport};

    /// Issue 14's two-address device: a proxy that sends SIP from one address and asks DNS
    /// from another. Without the second address its queries are not judged, and the note says
    /// whose they were; with it, they are the device's.
    #[test]
    fn traffic_from_other_addresses_is_left_out_and_said() {
        let timeline = Timeline::new();
        let query = crate::timeline::DnsQuery {
            transport: Transport::Udp,
            client: "127.0.0.2:40000".parse().unwrap(),
            server: "127.0.0.1:53".parse().unwrap(),
            id: 7,
            name: "snom.rocks.".into(),
            qtype: "NAPTR".into(),
            raw: Vec::new(),
        };
        timeline.record(EventKind::DnsQuery(query.clone()));
        timeline.record(EventKind::DnsQuery(query));
        timeline.record(EventKind::Note { text: "x".into() });
        let events: Vec<Event> = timeline.events();
        let mut device = LabDevice {
            address: "127.0.0.1".parse().unwrap(),
            other_addresses: Vec::new(),
            sip_port: None,
            profile_path: "p.yaml".into(),
            act_within: Duration::from_secs(1),
        };
        let (kept, others): (Vec<_>, Vec<_>) = events
            .iter()
            .cloned()
            .partition(|e| super::super::external::concerns_device(e, &device));
        assert_eq!(kept.len(), 1);
        assert_eq!(
            left_out(&others).as_deref(),
            Some(
                "not judged, as not from the device's addresses: 127.0.0.2: 2 DNS quer(ies) (if one of them is the device's, add it to the lab's device.other_addresses)"
            )
        );
        device.other_addresses = vec!["127.0.0.0/30".parse().unwrap()];
        assert!(
            events
                .iter()
                .all(|e| super::super::external::concerns_device(e, &device))
        );
        assert_eq!(device.describe(), "127.0.0.1 (also 127.0.0.0/30)");
    }
}
