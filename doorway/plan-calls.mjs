// The plan's Doorway, in one script: connect to a node's conductor with
// @holochain/client, install the hApp for the Doorway's own agent, grant a
// signing key the way Holochain 0.7.1 wants it, then make every call of the
// plan with the plan's own payloads, and receive a signal. docs/DOORWAY.md
// walks through it; `cargo xtask test` runs it against a real node.
//
//   ELOHIM_ADMIN_URL=ws://127.0.0.1:PORT  the node's admin interface
//   ELOHIM_HAPP=/path/elohim_orchestrator.happ
//   ELOHIM_ORIGIN=elohim-sidecar          the origin the interface allows
//
// Prints one JSON line per step ({"step": ..., ...}); exits non-zero on the
// first failure.

import {
  AdminWebsocket,
  AppWebsocket,
  generateSigningKeyPair,
  randomCapSecret,
  setSigningCredentials,
  encodeHashToBase64,
} from "@holochain/client";
import { resolve } from "node:path";

const adminUrl = process.env.ELOHIM_ADMIN_URL;
// The conductor opens the bundle itself, from its own working directory.
const happ = process.env.ELOHIM_HAPP && resolve(process.env.ELOHIM_HAPP);
const origin = process.env.ELOHIM_ORIGIN ?? "elohim-sidecar";
if (!adminUrl || !happ) {
  console.error("set ELOHIM_ADMIN_URL and ELOHIM_HAPP (see docs/DOORWAY.md)");
  process.exit(2);
}

const report = (step, detail = {}) =>
  console.log(JSON.stringify({ step, ...detail }, (_, v) =>
    v instanceof Uint8Array ? encodeHashToBase64(v) : v));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const hex = (n) => Array.from({ length: 64 }, (_, i) => "0123456789abcdef"[(n + i) % 16]).join("");

// 1. Connect. The node's admin interface only answers the origin it allows,
//    so web pages cannot drive it; a Doorway process names that origin.
const admin = await AdminWebsocket.connect({
  url: new URL(adminUrl),
  wsClientOptions: { origin },
});
report("connected", { admin: adminUrl });

// 2. The Doorway's own agent and app, and an app interface for it.
const agent = await admin.generateAgentPubKey();
const appId = `doorway-${Date.now()}`;
await admin.installApp({
  source: { type: "path", value: happ },
  agent_key: agent,
  installed_app_id: appId,
});
await admin.enableApp({ installed_app_id: appId });
const { port } = await admin.attachAppInterface({
  allowed_origins: origin,
  installed_app_id: appId,
});
const { token } = await admin.issueAppAuthenticationToken({
  installed_app_id: appId,
});
const app = await AppWebsocket.connect({
  url: new URL(`ws://127.0.0.1:${port}`),
  token,
  wsClientOptions: { origin },
});
const info = await app.appInfo();
const cell = info.cell_info["node_registry"].find((c) => c.type === "provisioned");
const cellId = cell.value.cell_id;
report("installed", { app: appId, agent });

// 3. A signing key for zome calls. @holochain/client 0.21's own
//    `authorizeSigningCredentials` sends the 0.7.0 shape ({tag, functions,
//    access}) and 0.7.1 refuses it; this is the shape 0.7.1 takes.
const [keyPair, signingKey] = await generateSigningKeyPair(agent);
const capSecret = await randomCapSecret();
await admin.grantZomeCallCapability({
  cell_id: cellId,
  cap_grant: {
    tag: "doorway",
    constraint: {
      type: "assigned",
      value: { secret: capSecret, assignees: [signingKey] },
    },
    grant: { functions: { type: "all" } },
  },
});
setSigningCredentials(cellId, { capSecret, keyPair, signingKey });
report("signing_key_granted");

const call = async (fn_name, payload) => {
  const started = Date.now();
  const out = await app.callZome({
    role_name: "node_registry",
    zome_name: "node_registry_coordinator",
    fn_name,
    payload,
  });
  report(fn_name, { ms: Date.now() - started });
  return out;
};
// Reads that wait for gossip: asked again until `ok` holds (60 s at most).
const eventually = async (fn_name, payload, ok) => {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const out = await call(fn_name, payload);
    if (ok(out)) return out;
    if (Date.now() > deadline) throw new Error(`${fn_name}: not as expected: ${JSON.stringify(out)}`);
    await sleep(500);
  }
};

// 4. Signals: the zome's signals reach the Doorway's app interface.
const signals = [];
app.on("signal", (signal) => {
  if (signal.type === "app") signals.push(signal.value.payload);
});

// 5. register_node, as the plan's edge node writes it, in the region of the
//    node whose conductor this is (the first present node it sees).
const present = await eventually("get_present_nodes", null, (nodes) => nodes.length > 0);
const region = present[0].region;
const nodeId = await call("derive_node_id", "doorway");
const now = () => new Date().toISOString();
const registration = {
  node_id: nodeId,
  agent_pub_key: agent,
  display_name: "Doorway's rack",
  cpu_cores: 8,
  memory_gb: 32,
  storage_tb: 2,
  bandwidth_mbps: 100,
  region,
  latitude: undefined,
  longitude: undefined,
  zomes_hosted: ["node_registry"],
  steward_tier: "caretaker",
  custodian_opt_in: true,
  max_custody_gb: 200,
  max_bandwidth_mbps: 20,
  max_cpu_percent: 15.0,
  uptime_percent: 99.5,
  last_heartbeat: now(),
  registered_at: now(),
  updated_at: now(),
  signature: "the plan's signature: Holochain signs every action, so it is not needed",
};
await call("register_node", registration);

// 6. heartbeat, the plan's loop body (the loop itself would run every 30 s;
//    only the first beat of a lease period, or a status change, writes).
const heartbeat = (status) => ({
  node_id: nodeId,
  timestamp: now(),
  status,
  current_load: 0.25,
  active_connections: 3,
  signature: "not needed",
});
await call("heartbeat", heartbeat("online"));
await call("heartbeat", heartbeat("online"));

// 7. Health and discovery.
const health = await call("get_node_health", nodeId);
if (!health.registered) throw new Error("get_node_health: not registered");
const inRegion = await eventually("get_nodes_by_region", region, (nodes) =>
  nodes.some((n) => n.node_id !== nodeId));
const custodian = inRegion.find((n) => n.node_id !== nodeId);
await call("get_nodes_by_tier", "caretaker");
// The plan's filters: `tier` is the lowest acceptable, `region` a list. On a
// busy machine every node may report itself degraded, and only online
// nodes are asked for here: the answer may be short, the call must work.
const offered = await call("get_available_custodians", {
  status: "online",
  min_storage_gb: 1,
  region: [region, "us-east"],
  tier: "caretaker",
});
report("custodians_offered", { nodes: offered.map((c) => c.registration.node_id) });
const chosen = await call("get_node", custodian.node_id);

// 8. update_node_capacity (the plan's (node_id, updates)).
await call("update_node_capacity", {
  node_id: nodeId,
  updates: { max_custody_gb: 150 },
});

// 9. attest_health: the Doorway saw the node answer.
await call("attest_health", {
  attester_node_id: nodeId,
  subject_node_id: custodian.node_id,
  success: true,
  response_time_ms: 12,
  timestamp: Date.now() * 1000,
});

// 10. assign_custodian: the Doorway places a content of its own. The content
//     id binds the content to its owner; the zome computes it.
const contentHash = hex(3);
const contentId = await call("derive_content_id", { owner: agent, content_hash: contentHash });
const assignment = {
  assignment_id: `${contentId}#0@0`,
  content_id: contentId,
  content_hash: contentHash,
  content_size_bytes: 1000,
  shard_size_bytes: 1000,
  shard_hash: hex(5),
  owner_agent: agent,
  reach: "public",
  custodian_node_id: chosen.registration.node_id,
  custodian_registration: chosen.action_hash,
  strategy: "full_replica",
  threshold: 1,
  shard_count: 1,
  shard_index: 0,
  round_custodians: [chosen.registration.node_id],
  decided_by: "publisher",
  decision_round: 0,
  replaces: null,
  preferred_region: null,
  required_tier: null,
  quorum_proposal: null,
  quorum_votes: [],
  relationship: null,
};
await call("assign_custodian", assignment);
const forContent = await call("get_assignments_for_content", contentId);
if (forContent.length !== 1) throw new Error("get_assignments_for_content: expected the one assignment");
await eventually("get_assignments_for_node", custodian.node_id, (a) =>
  a.some((x) => x.content_id === contentId));

// 11. A signal: repairing the custodian's shards (as a detector would once
//     it is declared failed) emits `ReplicateContent` to the local clients
//     when another node takes the shard, or `DisasterRecoveryFailed` when
//     none can (the owner's own node never keeps its content).
await call("trigger_disaster_recovery", custodian.node_id);
const about = (s) =>
  ["ReplicateContent", "DisasterRecoveryFailed"].includes(s.type) && s.content_id === contentId;
const deadline = Date.now() + 10_000;
while (!signals.some(about) && Date.now() < deadline) {
  await sleep(100);
}
const signal = signals.find(about);
if (!signal) throw new Error(`no repair signal; got ${JSON.stringify(signals)}`);
report("signal", { type: signal.type, content_id: signal.content_id });

// 12. A payload that does not fit names its field.
try {
  await call("heartbeat", { ...heartbeat("online"), timestamp: "yesterday" });
  throw new Error("a heartbeat timed 'yesterday' was accepted");
} catch (e) {
  const text = String(e?.message ?? e);
  if (!text.includes("at `timestamp`")) throw new Error(`the error does not name the field: ${text}`);
  report("bad_payload_named", { error: text.slice(0, 160) });
}

// 13. deregister_node, the plan's (node_id, reason).
await call("deregister_node", { node_id: nodeId, reason: "doorway example done" });
await app.client.close();
await admin.client.close();
report("done");
