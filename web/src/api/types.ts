// The wire shapes of drover's REST API, as src/drover/server/api/schemas.py and
// people_schemas.py define them. Times are ISO 8601 strings.

export type Iso = string;
export type Bucket = "ok" | "drifted" | "failed" | "unknown";
export type Counts = Record<Bucket, number>;
export type Lifecycle = "online" | "offline" | "lost";
export type TargetStatus = "running" | "stopped";
export type RoleName = "viewer" | "operator" | "approver" | "admin";

export interface GrantIO {
  role: RoleName;
  applications: string[];
  environments: string[];
}

export interface Whoami {
  name: string;
  groups: string[];
  grants: GrantIO[];
  via: string;
}

export interface LoginOut {
  name: string;
  csrf_token: string;
  expires_at: Iso;
}

export interface OverviewApp {
  name: string;
  description: string;
  environment: string;
  owners: string[];
  services: number;
  hosts: number;
  counts: Counts;
}

export interface HostTotals {
  online: number;
  offline: number;
  lost: number;
  total: number;
}

export interface Overview {
  applications: OverviewApp[];
  environments: string[];
  hosts: HostTotals;
  generated_at: Iso;
}

export interface ServiceOnHost {
  name: string;
  application: string;
  status: string;
  since: Iso;
  pid: number | null;
  restarts: number;
  message: string;
  convergence: string | null;
}

export interface HostOut {
  host: string;
  online: boolean;
  state: Lifecycle;
  state_since: Iso;
  state_cause: string;
  hostname: string;
  agent_version: string;
  started_at: Iso;
  last_heartbeat: Iso;
  desired_revision: string | null;
  services: ServiceOnHost[];
  labels?: Record<string, string>;
  counts?: Counts;
}

export interface UnitOut {
  host: string;
  unit: string;
  description: string;
  slice: string;
  properties: Record<string, string>;
  application: string | null;
  service: string | null;
  assigned_by: string;
  vanished_since: Iso | null;
}

export interface GridService {
  name: string;
  provider: string;
  target: TargetStatus;
  policy: string;
  discovered: boolean;
}

export type ParamType = "string" | "integer" | "boolean" | "choice";

export interface ParamSpec {
  name: string;
  type: ParamType;
  description: string;
  required: boolean;
  default: string | number | boolean | null;
  minimum: number | null;
  maximum: number | null;
  choices: string[] | null;
  pattern: string | null;
}

export interface CommandSpec {
  name: string;
  description: string;
  timeout_s: number;
  params: ParamSpec[];
}

export interface CellOverride {
  id: string;
  status: TargetStatus;
  reason: string;
  created_by: string;
  expires_at: Iso;
}

export interface GridCell {
  status: string | null;
  target: TargetStatus;
  override: CellOverride | null;
  drift: boolean;
  bucket: Bucket;
  since: Iso | null;
  message: string;
}

export interface GridRow {
  host: string;
  online: boolean;
  state: Lifecycle | null; // null: the host never reported
  cells: (GridCell | null)[];
}

export interface Grid {
  application: string;
  description: string;
  environment: string;
  owners: string[];
  services: GridService[];
  commands: CommandSpec[];
  counts: Counts;
  total: number;
  offset: number;
  rows: GridRow[];
}

export interface Strategy {
  batch_size?: number | null;
  batch_percent?: number | null;
  pause_s?: number;
  health_gate_s?: number;
  max_failures?: number | null;
  max_failures_percent?: number | null;
  host_timeout_s?: number | null;
  deadline_s?: number;
}

export interface PlanOut {
  application: string;
  services: string[];
  batches: string[][];
  strategy: Strategy;
}

export type ActionKind = "start" | "stop" | "restart" | "command" | "ping";

export interface HostResult {
  host: string;
  outcome: string;
  exit_code: number | null;
  started_at: Iso | null;
  finished_at: Iso | null;
  duration_s: number | null;
  output: string;
  batch: number; // from 0
  sent_at: Iso | null;
  output_chunks?: number | null;
  abort_requested_at?: Iso | null;
  abort_sent_at?: Iso | null;
}

export interface Vote {
  approver: string;
  decision: "approve" | "reject";
  at: Iso;
  comment: string;
  via: string;
}

export interface ApprovalPolicy {
  name: string;
  applications: string[];
  environments: string[];
  kinds: string[];
  required: number;
  from_groups: string[];
  approved_by: string[];
  satisfied: boolean;
}

export interface Approval {
  action_id: string;
  application: string;
  environment: string;
  kind: string;
  state: "pending" | "approved" | "rejected" | "expired" | "cancelled";
  requested_by: string;
  requested_at: Iso;
  open_until: Iso;
  policies: ApprovalPolicy[];
  votes: Vote[];
  decided_at: Iso | null;
  decided_by: string | null;
  reason: string | null;
}

export interface CommandOut {
  name: string;
  params: Record<string, string | number | boolean>;
  argv: string[];
  run_as: string | null;
  timeout_s: number;
}

export interface Action {
  id: string;
  kind: ActionKind;
  application: string;
  /** The application's environment when the action was requested. */
  environment: string | null;
  services: string[];
  state: string;
  requested_by: string;
  created_at: Iso;
  deadline: Iso;
  strategy: Strategy | null;
  rollout_state: string | null;
  halt_reason: string | null;
  cancel?: { abort_running: boolean; requested_by: string } | null;
  hosts: HostResult[];
  released_at?: Iso | null;
  approval?: Approval | null;
  command?: CommandOut | null;
}

export interface Problem {
  file: string;
  line: number;
  column: number;
  message: string;
}

export interface ConfigOut {
  source: string;
  active_revision: string | null;
  active_since: Iso | null;
  last_error: { revision: string | null; message: string; at: Iso; problems: Problem[] } | null;
  discovery_problems: Problem[];
}

export interface AuditEntry {
  id: number;
  at: Iso;
  actor: string;
  kind: string;
  subject: string;
  detail: Record<string, unknown>;
  source: string;
  correlation: string;
}

/** `event: change` of GET /api/v1/events. */
export interface Change {
  topics: string[];
  /** null: possibly any (too many to list); []: none you may see. */
  applications: string[] | null;
  /** null: possibly any (too many to list); []: none you may see. */
  hosts: string[] | null;
  actions: string[];
}

// Enrollment (src/drover/server/api/enrollment_routes.py): hosts' bus keys and one-time tokens.

export type KeyState = "pending" | "enrolled" | "rejected" | "revoked";

/** A host's bus key: a request waiting for approval, or enrolled, rejected or revoked. */
export interface HostKey {
  host: string;
  /** The host's user NKEY (U…), as `drover agent enroll` printed it on the host. */
  public_key: string;
  state: KeyState;
  requested_at: Iso;
  /** The address the request came from. */
  source: string;
  /** How it was enrolled (a token, an approval); empty while it waits. */
  via: string;
  decided_at: Iso | null;
  decided_by: string | null;
  revoked_at: Iso | null;
  revoked_by: string | null;
}

export interface EnrollmentToken {
  id: string;
  created_by: string;
  created_at: Iso;
  expires_at: Iso;
  /** Only this host may use it; null: any host. */
  host: string | null;
  used_at: Iso | null;
  used_by_host: string | null;
}

/** The answer of POST /api/v1/enrollment-tokens: the only time the secret is shown. */
export interface NewEnrollmentToken extends EnrollmentToken {
  token: string;
}

export interface Revoked {
  host: string;
  revoked_keys: string[];
}
