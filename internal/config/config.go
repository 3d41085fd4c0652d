// Package config loads and validates weir.yaml.
//
// The field names here are the contract users write (see DESIGN.md). Loading
// is strict: an unknown key is an error, because a misspelt policy or TLS key
// silently ignored is a security hole. Every error names the file, line and
// key path, and says what is wrong, so an operator can fix it without reading
// code.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole of weir.yaml.
type Config struct {
	// DataDir holds the embedded store, signing keys and generated TLS material.
	DataDir string `yaml:"data_dir"`
	// Store is "" for SQLite in DataDir; a postgres:// URL selects the shared store.
	Store   string   `yaml:"store"`
	Listen  Listen   `yaml:"listen"`
	TLS     TLS      `yaml:"tls"`
	Targets []Target `yaml:"targets"`
	Agents  []Agent  `yaml:"agents"`
	Policy  Policy   `yaml:"policy"`
	Audit   Audit    `yaml:"audit"`
	Limits  Limits   `yaml:"limits"`
	Tokens  Tokens   `yaml:"tokens"`
	// Approvals configures just-in-time approval (policy action review).
	Approvals Approvals `yaml:"approvals"`
	// Azure configures the HTTPS proxy for ARM, Key Vault and Functions
	// and weir's own Azure credential (see azure.go).
	Azure Azure `yaml:"azure"`

	// Path is the file the config was read from (not a YAML key).
	Path string `yaml:"-"`
}

// Listen holds the addresses weir listens on; an empty address disables that front end.
type Listen struct {
	Postgres   string `yaml:"postgres"`
	HTTP       string `yaml:"http"`
	AzureProxy string `yaml:"azure_proxy"`
}

// TLS configures the certificate agents see on weir's front ends.
type TLS struct {
	// CertFile and KeyFile are PEM files; when both are empty a self-signed
	// certificate is generated into data_dir on first start.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// AllowPlaintextLoopback accepts PostgreSQL clients without TLS, and only
	// when the listener is bound to a loopback address: a weir token sent in
	// clear over a network is a stolen token.
	AllowPlaintextLoopback bool `yaml:"allow_plaintext_loopback"`
}

// Target is one resource agents reach through weir.
type Target struct {
	Name string `yaml:"name"`
	Kind string `yaml:"kind"`
	// Address is host:port of the upstream server.
	Address  string `yaml:"address"`
	Database string `yaml:"database"`
	Username string `yaml:"username"`
	// PasswordEnv names the environment variable holding the upstream
	// password; the password itself is never written in the config.
	PasswordEnv string `yaml:"password_env"`
	// SSLMode is the upstream TLS mode: disable, require, verify-ca, verify-full.
	SSLMode string `yaml:"sslmode"`
	// SSLRootCert is a PEM bundle to verify the upstream server with.
	SSLRootCert string `yaml:"sslrootcert"`
	// Auth selects the upstream credential: "password" (default) or "entra".
	Auth   string            `yaml:"auth"`
	Entra  Entra             `yaml:"entra"`
	Labels map[string]string `yaml:"labels"`

	// Endpoint is the upstream base URL of an Azure target: a blob
	// endpoint (https://acct.blob.core.windows.net, or Azurite's
	// http://127.0.0.1:10000/devstoreaccount1), ARM, a vault.
	Endpoint string `yaml:"endpoint"`
	// Blob and Azure hold the keys of those target kinds (see blob.go,
	// azure.go); they sit inline in the target's YAML mapping.
	Blob  BlobTarget  `yaml:",inline"`
	Azure AzureTarget `yaml:",inline"`
}

// Entra configures a Microsoft Entra ID token as the upstream password
// (Azure Database for PostgreSQL with Entra authentication).
type Entra struct {
	// TenantID, ClientID and ClientSecretEnv select a client-secret
	// credential; with only ClientID, a user-assigned managed identity; with
	// nothing, the default Azure credential chain.
	TenantID        string `yaml:"tenant_id"`
	ClientID        string `yaml:"client_id"`
	ClientSecretEnv string `yaml:"client_secret_env"`
	// Scope defaults to https://ossrdbms-aad.database.windows.net/.default.
	Scope string `yaml:"scope"`
}

// Agent is a non-human identity allowed to hold weir tokens.
type Agent struct {
	Name    string        `yaml:"name"`
	Targets []string      `yaml:"targets"`
	MaxTTL  time.Duration `yaml:"max_ttl"`
	// Federation lists the OIDC tokens (a CI job's, a workload's) that may
	// be exchanged for a weir token of this agent at POST /v1/token/exchange.
	// A token is accepted when any one rule matches it.
	Federation []Federation `yaml:"federation"`
}

// Federation is one rule admitting OIDC tokens of an external issuer.
type Federation struct {
	// Issuer is the exact iss claim (and the OIDC discovery base URL), e.g.
	// https://token.actions.githubusercontent.com. It must be https (http
	// only for a loopback host).
	Issuer string `yaml:"issuer"`
	// Audience must be one of the token's aud values.
	Audience string `yaml:"audience"`
	// Subject is a pattern the whole sub claim must match: '*' matches any
	// run of characters except ':', '**' matches any run including ':', '?'
	// one character other than ':'; everything else is literal.
	Subject string `yaml:"subject"`
	// When is an optional CEL condition over `claims` (the token's verified
	// claims, map(string, dyn)); it is compiled when the server starts.
	When string `yaml:"when"`
	// TTL is the lifetime of the weir token (default tokens.default_ttl);
	// it is further capped by the agent's max_ttl and by the OIDC token's
	// remaining lifetime.
	TTL time.Duration `yaml:"ttl"`
	// Provider selects the claims-to-context mapping: github-actions,
	// azure-devops, entra or generic. Empty: detected from the issuer.
	Provider string `yaml:"provider"`

	// Line is where the rule's `when` (or the rule) is written (not a YAML key).
	Line int `yaml:"-"`
}

// Federation providers (claims-to-context mappings).
const (
	ProviderGitHubActions = "github-actions"
	ProviderAzureDevOps   = "azure-devops"
	ProviderEntra         = "entra"
	ProviderGeneric       = "generic"
)

// DetectProvider names the claims mapping for an issuer URL.
func DetectProvider(issuer string) string {
	switch {
	case issuer == "https://token.actions.githubusercontent.com" || strings.HasPrefix(issuer, "https://token.actions.githubusercontent.com/"):
		return ProviderGitHubActions
	case strings.HasPrefix(issuer, "https://vstoken.dev.azure.com/"):
		return ProviderAzureDevOps
	case strings.HasPrefix(issuer, "https://login.microsoftonline.com/"), strings.HasPrefix(issuer, "https://sts.windows.net/"),
		strings.HasPrefix(issuer, "https://login.microsoftonline.us/"), strings.HasPrefix(issuer, "https://login.chinacloudapi.cn/"),
		strings.HasPrefix(issuer, "https://login.partner.microsoftonline.cn/"):
		return ProviderEntra
	}
	return ProviderGeneric
}

// Policy is the ordered rule list; the first rule whose condition holds wins
// and a command no rule matches is denied.
type Policy struct {
	Rules   []Rule  `yaml:"rules"`
	Masking Masking `yaml:"masking"`
}

// Masking says what is masked in everything that leaves weir.
type Masking struct {
	// Detectors recognise sensitive values by what they look like, in every
	// value, error and notice. Absent: all detectors; an empty list: none.
	Detectors []string `yaml:"detectors"`
	// Format is how a detected value is shown: partial (default), redact,
	// hash (stable per value, keyed by data_dir/mask.key) or null.
	Format string `yaml:"format"`
	// Columns masks by where a value comes from (column lineage): every
	// output value derived from one of these columns is masked whole.
	// Selectors are table.column (that table in any schema),
	// schema.table.column, or *.column (that column of every relation).
	// Names are compared as PostgreSQL stores them (unquoted SQL names
	// fold to lower case, so write them in lower case).
	Columns []string `yaml:"columns"`
	// AllowEquality lets a masked column be compared for equality in
	// WHERE / JOIN ON / HAVING (WHERE email = $1, email IN (…)); every
	// other use of a masked column in those clauses, and any use in
	// ORDER BY, GROUP BY, DISTINCT ON, window and FILTER clauses, is
	// refused because it lets a query infer the values.
	AllowEquality bool `yaml:"allow_equality"`
	// CatalogTTL is how long weir trusts what it read of a target's
	// catalog (relations, their columns, view definitions) before
	// reading it again; default 60s. A relation weir does not know is
	// looked up at once, whatever the TTL.
	CatalogTTL time.Duration `yaml:"catalog_ttl"`
}

// Rule is one policy rule.
type Rule struct {
	Name string `yaml:"name"`
	// When is a CEL expression over agent, context, target and command.
	When   string `yaml:"when"`
	Action string `yaml:"action"`
	// Message is shown to the agent when the rule denies or holds a command;
	// it should say what to do instead.
	Message string `yaml:"message"`
	// Mode applies to action review only: "hold" (default) keeps the client
	// waiting up to approvals.timeout for the decision; "async" refuses at
	// once with the request id, and an approved grant lets the same agent
	// run the same statement with the same parameters once, within
	// approvals.grant_ttl.
	Mode string `yaml:"mode"`

	Line int `yaml:"-"`
}

// Review rule modes.
const (
	ModeHold  = "hold"
	ModeAsync = "async"
)

// Approvals configures just-in-time approval of single commands.
type Approvals struct {
	// Timeout is how long a held (mode hold) command waits for a decision;
	// a request still pending then is expired (default 60s).
	Timeout time.Duration `yaml:"timeout"`
	// AsyncTimeout is how long an async request stays pending before it
	// expires (default 24h).
	AsyncTimeout time.Duration `yaml:"async_timeout"`
	// GrantTTL is how long an approval may be used, once, from the moment
	// it was given (default 15m).
	GrantTTL time.Duration `yaml:"grant_ttl"`
	// Notify lists where new requests are announced.
	Notify []Notify `yaml:"notify"`
}

// Notify is one notification channel for approval requests.
type Notify struct {
	// Kind is webhook (the request as JSON), slack (incoming webhook) or
	// teams (Adaptive Card message for an incoming webhook / Workflows).
	Kind string `yaml:"kind"`
	// URLEnv names the environment variable holding the URL (webhook URLs
	// are credentials and never go in the config).
	URLEnv string `yaml:"url_env"`
}

// Notification kinds.
const (
	NotifyWebhook = "webhook"
	NotifySlack   = "slack"
	NotifyTeams   = "teams"
)

// Approval defaults.
const (
	DefaultApprovalTimeout      = 60 * time.Second
	DefaultApprovalAsyncTimeout = 24 * time.Hour
	DefaultGrantTTL             = 15 * time.Minute
)

// Audit configures the write-ahead audit log.
type Audit struct {
	// Fsync makes every batch of audit records reach the disk before the
	// commands in it are forwarded (survives power loss). Without it a
	// record is committed to the store's log before forwarding and survives a
	// crash of weir, not of the machine.
	Fsync bool `yaml:"fsync"`
	// CheckpointInterval is how often the chain's head is signed (default
	// 10s). Records after the newest checkpoint are not yet signed.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// RecordBytes caps, per session, how many bytes of the (masked) result
	// rows the agent saw are kept in the audit log for replay (default
	// 1 MiB; 0 keeps none). Beyond it only counts are kept.
	RecordBytes *int `yaml:"record_bytes"`
	// Retention is how long records are kept (0, the default: forever).
	// Pruning removes only records covered by a signed checkpoint and
	// leaves a signed anchor, so the shortened chain still verifies.
	Retention time.Duration `yaml:"retention"`
}

// Limits bound what one client may send.
type Limits struct {
	// MaxMessageBytes caps one protocol message from a client (default 16 MiB).
	MaxMessageBytes int `yaml:"max_message_bytes"`
}

// Tokens configures weir tokens.
type Tokens struct {
	// DefaultTTL applies when `weir token issue` has no --ttl (default 15m).
	DefaultTTL time.Duration `yaml:"default_ttl"`
}

// Target kinds.
const (
	KindPostgres       = "postgres"
	KindAzureBlob      = "azure-blob"
	KindAzureARM       = "azure-arm"
	KindAzureKeyVault  = "azure-keyvault"
	KindAzureFunctions = "azure-functions"
)

// supportedKinds is said in errors.
const supportedKinds = "postgres, azure-blob, azure-arm, azure-keyvault or azure-functions"

// Defaults.
const (
	DefaultMaxMessageBytes = 16 << 20
	DefaultTokenTTL        = 15 * time.Minute
	DefaultAgentMaxTTL     = time.Hour
	DefaultEntraScope      = "https://ossrdbms-aad.database.windows.net/.default"
	DefaultRecordBytes     = 1 << 20
)

// Error is a config error located in the file.
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads and validates the config file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(path, data)
}

// Parse validates config text; path is used in error messages and to
// resolve relative paths in the config.
func Parse(path string, data []byte) (*Config, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		return nil, yamlErrors(path, err)
	}
	cfg := &Config{Path: path}
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(cfg); err != nil {
		return nil, yamlErrors(path, err)
	}
	lines := map[string]int{}
	indexLines(&root, "", lines)
	for i := range cfg.Policy.Rules {
		cfg.Policy.Rules[i].Line = lines[fmt.Sprintf("policy.rules[%d].when", i)]
	}
	for i := range cfg.Agents {
		for j := range cfg.Agents[i].Federation {
			key := fmt.Sprintf("agents[%d].federation[%d]", i, j)
			line := lines[key+".when"]
			if line == 0 {
				line = lines[key]
			}
			cfg.Agents[i].Federation[j].Line = line
		}
	}
	v := validator{file: path, lines: lines}
	cfg.applyDefaults()
	cfg.validate(&v)
	if len(v.errs) > 0 {
		return nil, errors.Join(v.errs...)
	}
	return cfg, nil
}

var (
	yamlLine        = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	yamlUnknownKey  = regexp.MustCompile(`^field (\S+) not found in type config\.(\w+)$`)
	yamlBadDuration = regexp.MustCompile("^cannot unmarshal !!\\w+ `(.*)` into time.Duration$")
)

// yamlErrors turns the YAML library's messages into located, plain ones.
func yamlErrors(file string, err error) error {
	var errs []error
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(line, "yaml: unmarshal errors:"))
		if line == "" {
			continue
		}
		e := &Error{File: file, Msg: strings.TrimPrefix(line, "yaml: ")}
		if m := yamlLine.FindStringSubmatch(line); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Msg = m[2]
		}
		if m := yamlUnknownKey.FindStringSubmatch(e.Msg); m != nil {
			e.Msg = fmt.Sprintf("unknown key %q (in %s); check the spelling against the documented config", m[1], strings.ToLower(m[2]))
		} else if m := yamlBadDuration.FindStringSubmatch(e.Msg); m != nil {
			e.Msg = fmt.Sprintf("%q is not a duration; write e.g. 15m, 1h or 90s", m[1])
		}
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

// indexLines records the line of every key path ("targets[0].name").
func indexLines(n *yaml.Node, path string, out map[string]int) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			indexLines(c, path, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			p := key
			if path != "" {
				p = path + "." + key
			}
			out[p] = n.Content[i].Line
			indexLines(n.Content[i+1], p, out)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			out[p] = c.Line
			indexLines(c, p, out)
		}
	}
}

type validator struct {
	file  string
	lines map[string]int
	errs  []error
}

func (v *validator) fail(key, format string, args ...any) {
	line := v.lines[key]
	for k := key; line == 0 && k != ""; {
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
		line = v.lines[k]
	}
	v.errs = append(v.errs, &Error{File: v.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (c *Config) applyDefaults() {
	if c.DataDir == "" {
		c.DataDir = "./weir-data"
	}
	if !filepath.IsAbs(c.DataDir) && c.Path != "" {
		// Relative to the working directory, as a user typing paths expects;
		// made absolute so later chdirs cannot move it.
		if abs, err := filepath.Abs(c.DataDir); err == nil {
			c.DataDir = abs
		}
	}
	if c.Limits.MaxMessageBytes == 0 {
		c.Limits.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.Audit.RecordBytes == nil {
		n := DefaultRecordBytes
		c.Audit.RecordBytes = &n
	}
	if c.Audit.CheckpointInterval == 0 {
		c.Audit.CheckpointInterval = 10 * time.Second
	}
	if c.Tokens.DefaultTTL == 0 {
		c.Tokens.DefaultTTL = DefaultTokenTTL
	}
	if c.Approvals.Timeout == 0 {
		c.Approvals.Timeout = DefaultApprovalTimeout
	}
	if c.Approvals.AsyncTimeout == 0 {
		c.Approvals.AsyncTimeout = DefaultApprovalAsyncTimeout
	}
	if c.Approvals.GrantTTL == 0 {
		c.Approvals.GrantTTL = DefaultGrantTTL
	}
	for i := range c.Policy.Rules {
		if c.Policy.Rules[i].Action == "review" && c.Policy.Rules[i].Mode == "" {
			c.Policy.Rules[i].Mode = ModeHold
		}
	}
	for i := range c.Targets {
		t := &c.Targets[i]
		switch t.Kind {
		case KindPostgres:
			if t.SSLMode == "" {
				t.SSLMode = "require"
			}
			if t.Auth == "" {
				t.Auth = "password"
			}
			if t.Entra.Scope == "" {
				t.Entra.Scope = DefaultEntraScope
			}
		case KindAzureBlob:
			t.blobDefaults()
		case KindAzureARM, KindAzureKeyVault, KindAzureFunctions:
			t.azureDefaults()
		}
	}
	c.Azure.defaults()
	for i := range c.Agents {
		if c.Agents[i].MaxTTL == 0 {
			c.Agents[i].MaxTTL = DefaultAgentMaxTTL
		}
		for j := range c.Agents[i].Federation {
			f := &c.Agents[i].Federation[j]
			if f.Provider == "" {
				f.Provider = DetectProvider(f.Issuer)
			}
		}
	}
}

var namePattern = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

func (c *Config) validate(v *validator) {
	if c.Store != "" && !strings.HasPrefix(c.Store, "postgres://") && !strings.HasPrefix(c.Store, "postgresql://") {
		v.fail("store", `must be "" (embedded SQLite in data_dir) or a postgres:// URL`)
	} else if c.Store != "" {
		v.fail("store", "the shared PostgreSQL store is not available in this version; leave store empty to use the embedded store")
	}
	if c.Listen.Postgres == "" && c.Listen.HTTP == "" {
		v.fail("listen", "at least listen.postgres must be set, e.g. 127.0.0.1:6432")
	}
	if c.Listen.Postgres != "" {
		host, _, err := net.SplitHostPort(c.Listen.Postgres)
		if err != nil {
			v.fail("listen.postgres", "must be host:port: %v", err)
		} else if c.TLS.AllowPlaintextLoopback && !isLoopback(host) {
			v.fail("tls.allow_plaintext_loopback", "is only allowed when listen.postgres is a loopback address (got %q): tokens must not cross a network in clear", host)
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		v.fail("tls", "cert_file and key_file must be set together (or both left empty to generate a certificate)")
	}
	if c.Limits.MaxMessageBytes < 4096 || c.Limits.MaxMessageBytes > 1<<30 {
		v.fail("limits.max_message_bytes", "must be between 4096 and 1 GiB, got %d", c.Limits.MaxMessageBytes)
	}
	if *c.Audit.RecordBytes < 0 {
		v.fail("audit.record_bytes", "must be 0 (record no rows) or more, got %d", *c.Audit.RecordBytes)
	}
	if c.Audit.Retention != 0 && c.Audit.Retention < time.Hour {
		v.fail("audit.retention", "must be 0 (keep forever) or at least 1h, got %s", c.Audit.Retention)
	}
	if c.Audit.CheckpointInterval < time.Second {
		v.fail("audit.checkpoint_interval", "must be at least 1s, got %s", c.Audit.CheckpointInterval)
	}
	if c.Tokens.DefaultTTL < 0 {
		v.fail("tokens.default_ttl", "must be positive")
	}

	targets := map[string]bool{}
	for i, t := range c.Targets {
		key := fmt.Sprintf("targets[%d]", i)
		if !namePattern.MatchString(t.Name) {
			v.fail(key+".name", "%q is not a valid name: use lower-case letters, digits, - and _, starting with a letter", t.Name)
		}
		if targets[t.Name] {
			v.fail(key+".name", "target %q is defined twice", t.Name)
		}
		targets[t.Name] = true
		switch t.Kind {
		case KindPostgres:
			t.validatePostgres(v, key)
		case KindAzureBlob:
			t.validateBlob(v, key)
		case KindAzureARM, KindAzureKeyVault, KindAzureFunctions:
			t.validateAzure(v, key)
		case "":
			v.fail(key+".kind", "missing; one of "+supportedKinds)
		default:
			v.fail(key+".kind", "unsupported kind %q; use "+supportedKinds, t.Kind)
		}
	}
	c.Azure.validate(v, c)

	agents := map[string]bool{}
	for i, a := range c.Agents {
		key := fmt.Sprintf("agents[%d]", i)
		if !namePattern.MatchString(a.Name) {
			v.fail(key+".name", "%q is not a valid name: use lower-case letters, digits, - and _, starting with a letter", a.Name)
		}
		if agents[a.Name] {
			v.fail(key+".name", "agent %q is defined twice", a.Name)
		}
		agents[a.Name] = true
		if len(a.Targets) == 0 {
			v.fail(key+".targets", "missing: list the targets this agent may reach")
		}
		for j, tn := range a.Targets {
			if !targets[tn] {
				v.fail(fmt.Sprintf("%s.targets[%d]", key, j), "unknown target %q", tn)
			}
		}
		if a.MaxTTL < time.Minute || a.MaxTTL > 7*24*time.Hour {
			v.fail(key+".max_ttl", "must be between 1m and 168h, got %s", a.MaxTTL)
		}
		if len(a.Federation) > 0 && c.Listen.HTTP == "" {
			v.fail(key+".federation", "needs listen.http: federated tokens are exchanged at POST /v1/token/exchange on that address")
		}
		for j, f := range a.Federation {
			validateFederation(v, fmt.Sprintf("%s.federation[%d]", key, j), f, a.MaxTTL)
		}
	}

	for i, sel := range c.Policy.Masking.Columns {
		if msg := checkColumnSelector(sel); msg != "" {
			v.fail(fmt.Sprintf("policy.masking.columns[%d]", i), "%s", msg)
		}
	}
	if ttl := c.Policy.Masking.CatalogTTL; ttl < 0 || ttl > 24*time.Hour {
		v.fail("policy.masking.catalog_ttl", "must be between 0 (default 60s) and 24h, got %s", ttl)
	}
	switch c.Policy.Masking.Format {
	case "", "partial", "redact", "hash", "null":
	default:
		v.fail("policy.masking.format", "must be partial, redact, hash or null, got %q", c.Policy.Masking.Format)
	}
	rules := map[string]bool{}
	for i, r := range c.Policy.Rules {
		key := fmt.Sprintf("policy.rules[%d]", i)
		if r.Name == "" {
			v.fail(key+".name", "missing: every rule needs a name (it is shown to agents and in the audit log)")
		} else if rules[r.Name] {
			v.fail(key+".name", "rule %q is defined twice", r.Name)
		}
		rules[r.Name] = true
		if strings.TrimSpace(r.When) == "" {
			v.fail(key+".when", `missing: a CEL condition, e.g. 'command.kind == "read"' (use 'true' to match everything)`)
		}
		switch r.Action {
		case "allow", "deny", "review":
		default:
			v.fail(key+".action", "must be allow, deny or review, got %q", r.Action)
		}
		if r.Mode != "" {
			if r.Action != "review" {
				v.fail(key+".mode", "applies only to action review (how a command waits for approval); remove it from this %s rule", r.Action)
			} else if r.Mode != ModeHold && r.Mode != ModeAsync {
				v.fail(key+".mode", "must be hold (the client waits for the decision) or async (refused now, runs once when sent again after approval), got %q", r.Mode)
			}
		}
	}
	c.validateApprovals(v)
}

var envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (c *Config) validateApprovals(v *validator) {
	a := &c.Approvals
	if a.Timeout < time.Second || a.Timeout > time.Hour {
		v.fail("approvals.timeout", "must be between 1s and 1h (a held client waits this long), got %s", a.Timeout)
	}
	if a.AsyncTimeout < time.Minute || a.AsyncTimeout > 30*24*time.Hour {
		v.fail("approvals.async_timeout", "must be between 1m and 720h, got %s", a.AsyncTimeout)
	}
	if a.GrantTTL < time.Second || a.GrantTTL > 7*24*time.Hour {
		v.fail("approvals.grant_ttl", "must be between 1s and 168h, got %s", a.GrantTTL)
	}
	for i, n := range a.Notify {
		key := fmt.Sprintf("approvals.notify[%d]", i)
		switch n.Kind {
		case NotifyWebhook, NotifySlack, NotifyTeams:
		default:
			v.fail(key+".kind", "must be webhook, slack or teams, got %q", n.Kind)
		}
		if n.URLEnv == "" {
			v.fail(key+".url_env", "missing: name the environment variable that holds the webhook URL (the URL is a secret and never goes in the config)")
		} else if !envNamePattern.MatchString(n.URLEnv) {
			v.fail(key+".url_env", "%q is not an environment variable name", n.URLEnv)
		}
	}
}

// RuleMode returns the review mode of the rule named name (hold when the
// rule is unknown or has none).
func (c *Config) RuleMode(name string) string {
	for i := range c.Policy.Rules {
		if c.Policy.Rules[i].Name == name && c.Policy.Rules[i].Mode != "" {
			return c.Policy.Rules[i].Mode
		}
	}
	return ModeHold
}

func validateFederation(v *validator, key string, f Federation, maxTTL time.Duration) {
	if f.Issuer == "" {
		v.fail(key+".issuer", "missing: the exact issuer (iss) of the OIDC tokens, e.g. https://token.actions.githubusercontent.com")
	} else if u, err := url.Parse(f.Issuer); err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Scheme != "https" && u.Scheme != "http") {
		v.fail(key+".issuer", "%q is not an issuer URL: write it exactly as the tokens' iss claim, e.g. https://token.actions.githubusercontent.com", f.Issuer)
	} else if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		v.fail(key+".issuer", "must be https (discovery and signing keys fetched over plain http could be forged); http is only allowed for a loopback issuer")
	}
	if strings.TrimSpace(f.Audience) == "" {
		v.fail(key+".audience", `missing: the audience (aud) the tokens must be issued for, e.g. "weir" (GitHub Actions: core.getIDToken('weir'))`)
	}
	if err := CheckSubjectPattern(f.Subject); err != nil {
		v.fail(key+".subject", "%v", err)
	} else if f.Provider == ProviderGitHubActions && strings.HasPrefix(f.Subject, "repo:") {
		owner, _, ok := strings.Cut(strings.TrimPrefix(f.Subject, "repo:"), "/")
		if !ok || owner == "" || strings.ContainsAny(owner, "*?:") {
			v.fail(key+".subject", `the owner in %q must be written out ("repo:OWNER/REPO:..."): every GitHub repository's workflow can ask for a token with any audience`, f.Subject)
		}
	}
	if f.When != "" && strings.TrimSpace(f.When) == "" {
		v.fail(key+".when", "is blank: remove it or write a CEL condition over claims")
	}
	if f.TTL < 0 || (f.TTL > 0 && f.TTL < time.Second) {
		v.fail(key+".ttl", "must be at least 1s, got %s", f.TTL)
	} else if f.TTL > maxTTL {
		v.fail(key+".ttl", "%s exceeds the agent's max_ttl of %s", f.TTL, maxTTL)
	}
	switch f.Provider {
	case ProviderGitHubActions, ProviderAzureDevOps, ProviderEntra, ProviderGeneric:
	default:
		v.fail(key+".provider", "must be github-actions, azure-devops, entra or generic (or left out to detect it from the issuer), got %q", f.Provider)
	}
}

// MaxSubjectPattern bounds a federation subject pattern's length.
const MaxSubjectPattern = 512

// CheckSubjectPattern validates a federation subject pattern. A pattern
// must pin something: one made only of wildcards would admit every token
// the issuer signs for the audience, and for a public issuer such as GitHub
// Actions anyone's workflow can ask for any audience.
func CheckSubjectPattern(p string) error {
	if p == "" {
		return errors.New(`missing: a pattern for the token's subject (sub), e.g. "repo:acme/shop:ref:refs/heads/main"`)
	}
	if len(p) > MaxSubjectPattern {
		return fmt.Errorf("is longer than %d characters", MaxSubjectPattern)
	}
	if strings.Contains(p, "***") {
		return errors.New(`"***" is ambiguous: use "*" (not crossing ':') or "**" (crossing ':')`)
	}
	if strings.Trim(p, "*?") == "" {
		return fmt.Errorf("%q matches (nearly) every subject of the issuer: name the repository, project or identity the tokens must come from", p)
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return errors.New("contains a control character")
		}
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Target returns the target named name.
func (c *Config) Target(name string) (*Target, bool) {
	for i := range c.Targets {
		if c.Targets[i].Name == name {
			return &c.Targets[i], true
		}
	}
	return nil, false
}

// Agent returns the agent named name.
func (c *Config) Agent(name string) (*Agent, bool) {
	for i := range c.Agents {
		if c.Agents[i].Name == name {
			return &c.Agents[i], true
		}
	}
	return nil, false
}

func (t *Target) validatePostgres(v *validator, key string) {
	if _, _, err := net.SplitHostPort(t.Address); err != nil {
		v.fail(key+".address", "must be host:port of the upstream server: %v", err)
	}
	if t.Database == "" {
		v.fail(key+".database", "missing: the upstream database name")
	}
	if t.Username == "" {
		v.fail(key+".username", "missing: the upstream user weir logs in as")
	}
	switch t.Auth {
	case "password":
		if t.PasswordEnv == "" {
			v.fail(key+".password_env", "missing: name the environment variable that holds the upstream password (the password itself never goes in the config)")
		}
	case "entra":
		if t.Entra.ClientSecretEnv != "" && (t.Entra.TenantID == "" || t.Entra.ClientID == "") {
			v.fail(key+".entra", "client_secret_env needs tenant_id and client_id")
		}
	default:
		v.fail(key+".auth", `must be "password" or "entra", got %q`, t.Auth)
	}
	switch t.SSLMode {
	case "disable", "require", "verify-ca", "verify-full":
	default:
		v.fail(key+".sslmode", "must be disable, require, verify-ca or verify-full, got %q", t.SSLMode)
	}
}

// checkColumnSelector returns why sel is not a column selector, or "".
func checkColumnSelector(sel string) string {
	parts := strings.Split(sel, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return fmt.Sprintf("%q: want table.column, schema.table.column or *.column", sel)
	}
	for i, p := range parts {
		switch {
		case p == "":
			return fmt.Sprintf("%q: empty name part", sel)
		case p == "*" && (i != 0 || len(parts) != 2):
			return fmt.Sprintf("%q: * stands only for the relation, as in *.iban", sel)
		case strings.ContainsAny(p, " \t\"'*") && p != "*":
			return fmt.Sprintf("%q: write names without quotes or spaces, as PostgreSQL stores them", sel)
		}
	}
	return ""
}
