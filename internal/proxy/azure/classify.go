package azure

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/weir-gw/weir/internal/command"
	"github.com/weir-gw/weir/internal/config"
)

// Risks raised by Azure requests, for policy to deny or review on their own.
const (
	RiskSecretRead     command.Risk = "secret_read"     // the response carries keys, SAS, connection strings or secret values
	RiskKeyRotation    command.Risk = "key_rotation"    // regenerateKey: breaks every holder of the old key
	RiskRoleAssignment command.Risk = "role_assignment" // writes who may do what (also inside a deployment template)
	RiskCodeExecution  command.Risk = "code_execution"  // runCommand, deploymentScripts
	RiskOpaqueTemplate command.Risk = "opaque_template" // a deployment weir cannot read (templateLink, expression types)
	RiskKeyUse         command.Risk = "key_use"         // a Key Vault key is used (sign, decrypt, unwrap…)
	// RiskReveal marks a request whose client asked (X-Weir-Reveal) to see
	// secret values unmasked; only a rule (usually review) can allow it.
	RiskReveal command.Risk = "reveal_secret"
)

// Refusal is a request weir will not forward because of its form, before
// any policy rule is consulted. Msg is written for the agent.
type Refusal struct {
	Status int
	Code   string
	Msg    string
}

func (r *Refusal) Error() string { return r.Msg }

func refuse(code, format string, args ...any) *Refusal {
	return &Refusal{Status: 400, Code: code, Msg: "weir: " + fmt.Sprintf(format, args...)}
}

// Classified is a request in the form weir decided on and will forward:
// the canonical path and the re-encoded query, never the client's bytes.
type Classified struct {
	Commands []command.Command
	Path     string // escaped canonical path
	RawQuery string
	// Reveal: the decision covered showing secret values unmasked.
	Reveal bool
}

// MarkReveal turns the commands into a request to see secret values: the
// risk lets a rule hold it for approval, and the text differs from the
// masked request's, so a grant for one never serves the other.
func (c *Classified) MarkReveal() {
	c.Reveal = true
	for i := range c.Commands {
		c.Commands[i].Risks = append(c.Commands[i].Risks, RiskReveal)
		c.Commands[i].Text += " [reveal]"
		c.Commands[i].Attrs["reveal"] = "true"
	}
}

// ClassifyOptions are what classification needs beyond the request.
type ClassifyOptions struct {
	Kind string // config.KindAzureARM, KindAzureKeyVault, KindAzureFunctions
	// Host is the host the client asked for (vault name, site name).
	Host string
	// APIVersions, when non-empty, are the only versions accepted.
	APIVersions []string
}

// Classify turns one request into Commands. method is the effective method
// (override headers are refused before), escapedPath and rawQuery are the
// request target as sent, body the decoded body (nil when empty).
func Classify(o *ClassifyOptions, method, escapedPath, rawQuery string, body []byte) (*Classified, error) {
	switch method {
	case "GET", "HEAD", "PUT", "PATCH", "DELETE", "POST", "OPTIONS":
	default:
		return nil, refuse("UnknownOperation", "method %q is not forwarded", method)
	}
	segs, err := canonicalPath(escapedPath)
	if err != nil {
		return nil, err
	}
	q, err := parseQuery(rawQuery)
	if err != nil {
		return nil, err
	}
	if len(body) > 0 {
		if method == "GET" || method == "HEAD" {
			return nil, refuse("BodyNotAllowed", "a %s request must not carry a body", method)
		}
	}
	out := &Classified{Path: escapePath(segs), RawQuery: q.Encode()}
	switch o.Kind {
	case config.KindAzureARM, config.KindAzureKeyVault:
		if len(body) > 0 {
			if err := CheckJSON(body); err != nil {
				return nil, err
			}
		}
		ver, err := apiVersion(o, q)
		if err != nil {
			return nil, err
		}
		var c command.Command
		if o.Kind == config.KindAzureKeyVault {
			c, err = classifyVault(o.Host, method, segs)
		} else if len(segs) == 1 && strings.EqualFold(segs[0], "batch") {
			return classifyBatch(o, method, body, out)
		} else {
			c, err = classifyARM(method, segs, body)
		}
		if err != nil {
			return nil, err
		}
		c.Attrs["api_version"] = ver
		finish(&c, method, out.Path, out.RawQuery, body)
		out.Commands = []command.Command{c}
	case config.KindAzureFunctions:
		// The Functions host reads query names case-insensitively (ASP.NET
		// Core), so Code= is a function key as much as code= is.
		for k := range q {
			if strings.EqualFold(k, "code") {
				return nil, refuse("CredentialNotAllowed", "the query parameter %s (a function key) must not be sent: weir injects the function key itself", k)
			}
		}
		if len(body) > 0 && json.Valid(body) {
			if err := CheckJSON(body); err != nil {
				return nil, err
			}
		}
		c, err := classifyFunction(o.Host, method, segs)
		if err != nil {
			return nil, err
		}
		finish(&c, method, out.Path, out.RawQuery, body)
		out.Commands = []command.Command{c}
	default:
		return nil, refuse("UnknownTarget", "target kind %q is not served by the Azure proxy", o.Kind)
	}
	return out, nil
}

// finish fills what every command carries: the text an approval is bound
// to, the fingerprint, and reads/writes.
func finish(c *command.Command, method, path, rawQuery string, body []byte) {
	c.Method = method
	c.Verb = method + " " + c.Operation
	c.Text = method + " " + path
	if rawQuery != "" {
		c.Text += "?" + rawQuery
	}
	c.Fingerprint = method + " " + c.Operation
	switch c.Kind {
	case command.KindRead:
		c.Reads = []string{c.Resource}
	default:
		c.Writes = []string{c.Resource}
	}
}

// canonicalPath decodes the path once and refuses every form that two
// parsers could read differently (H01): encoded slashes or backslashes,
// double encoding, dot segments, empty segments, ';' parameters, control
// characters. One trailing slash is dropped.
func canonicalPath(p string) ([]string, error) {
	if !strings.HasPrefix(p, "/") {
		return nil, refuse("InvalidPath", "the request path must start with '/'")
	}
	lp := strings.ToLower(p)
	for _, bad := range []string{"%2f", "%5c", "%25", "%00", "\\", ";"} {
		if strings.Contains(lp, bad) {
			return nil, refuse("InvalidPath", "the request path contains %q, which weir refuses (encoded separators, double encoding and path parameters are read differently by different servers); send the plain path", bad)
		}
	}
	dec, err := url.PathUnescape(p)
	if err != nil {
		return nil, refuse("InvalidPath", "the request path has a malformed percent-escape")
	}
	for i := 0; i < len(dec); i++ {
		if dec[i] < 0x20 || dec[i] == 0x7f {
			return nil, refuse("InvalidPath", "the request path contains a control character")
		}
	}
	segs := strings.Split(dec[1:], "/")
	if len(segs) > 1 && segs[len(segs)-1] == "" {
		segs = segs[:len(segs)-1]
	}
	if len(segs) == 1 && segs[0] == "" {
		return nil, nil
	}
	for _, s := range segs {
		switch s {
		case "":
			return nil, refuse("InvalidPath", "the request path contains an empty segment (//)")
		case ".", "..":
			return nil, refuse("InvalidPath", "the request path contains a dot segment (%s)", s)
		}
	}
	return segs, nil
}

func escapePath(segs []string) string {
	if len(segs) == 0 {
		return "/"
	}
	var b strings.Builder
	for _, s := range segs {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

// overrideParams are query parameters some frameworks read as the method.
var overrideParams = []string{"x-http-method-override", "x-http-method", "x-method-override", "_method"}

func parseQuery(raw string) (url.Values, error) {
	if strings.Contains(raw, ";") {
		return nil, refuse("InvalidQuery", "the query contains ';', which servers split differently; encode it as %%3B")
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, refuse("InvalidQuery", "the query string is malformed")
	}
	seen := map[string]string{}
	for k := range q {
		lk := strings.ToLower(k)
		for _, o := range overrideParams {
			if lk == o {
				return nil, refuse("MethodOverrideRefused", "the query parameter %s (a method override) is refused: send the method you mean", k)
			}
		}
		if prev, ok := seen[lk]; ok {
			return nil, refuse("DuplicateParameter", "the query parameter %q is given twice (also as %q); send it once", k, prev)
		}
		seen[lk] = k
		if len(q[k]) > 1 && (lk == "api-version" || strings.HasPrefix(lk, "$")) {
			return nil, refuse("DuplicateParameter", "the query parameter %q is given more than once; send it once", k)
		}
	}
	return q, nil
}

// apiVersion enforces exactly one allowed api-version (H03).
func apiVersion(o *ClassifyOptions, q url.Values) (string, error) {
	var name string
	for k := range q {
		if strings.EqualFold(k, "api-version") {
			name = k
		}
	}
	if name == "" {
		return "", refuse("MissingApiVersion", "the api-version query parameter is required")
	}
	if name != "api-version" {
		return "", refuse("InvalidApiVersion", "write the parameter as api-version (lower case)")
	}
	v := q[name]
	if len(v) != 1 {
		return "", refuse("InvalidApiVersion", "give exactly one api-version")
	}
	if len(o.APIVersions) > 0 {
		for _, a := range o.APIVersions {
			if a == v[0] {
				return v[0], nil
			}
		}
		return "", refuse("InvalidApiVersion", "api-version %q is not one weir allows (azure.api_versions: %s)", v[0], strings.Join(o.APIVersions, ", "))
	}
	if !config.APIVersionStable.MatchString(v[0]) {
		return "", refuse("InvalidApiVersion", "api-version %q is not a stable version; preview versions must be listed in azure.api_versions by the operator", v[0])
	}
	return v[0], nil
}

// sensitiveAction says whether an ARM action's response carries secrets.
func sensitiveAction(types []string, action string) bool {
	a := action
	if strings.HasPrefix(a, "list") || strings.HasPrefix(a, "get") || strings.HasPrefix(a, "fetch") {
		for _, w := range []string{"key", "sas", "secret", "credential", "connectionstring", "password", "token"} {
			if strings.Contains(a, w) {
				return true
			}
		}
	}
	// config/appsettings/list, config/connectionstrings/list,
	// config/publishingcredentials/list, config/authsettings/list…
	return a == "list" && len(types) > 0 && types[len(types)-1] == "config"
}

var adminTypes = map[string]bool{
	"microsoft.authorization/roleassignments":                                       true,
	"microsoft.authorization/roledefinitions":                                       true,
	"microsoft.authorization/policyassignments":                                     true,
	"microsoft.authorization/policydefinitions":                                     true,
	"microsoft.authorization/locks":                                                 true,
	"microsoft.authorization/roleeligibilityschedulerequests":                       true,
	"microsoft.authorization/roleassignmentschedulerequests":                        true,
	"microsoft.managedidentity/userassignedidentities/federatedidentitycredentials": true,
}

// classifyARM reads an ARM path: scope (tenant, management group,
// subscription, resource group), then providers/{namespace}/{type}/{name}…
// and optionally a trailing collection or action. Providers, types and
// names are matched case-insensitively, as ARM does (H02).
func classifyARM(method string, segs []string, body []byte) (command.Command, error) {
	low := make([]string, len(segs))
	for i, s := range segs {
		low[i] = strings.ToLower(s)
	}
	c := command.Command{Protocol: "arm", Attrs: map[string]string{}}
	unknown := func() (command.Command, error) {
		return c, refuse("UnknownOperation", "weir cannot classify %s %s as an ARM operation, so it is refused; if this is a real ARM call, ask the operator", method, "/"+strings.Join(segs, "/"))
	}
	verb := func(readOnly bool) (string, command.Kind, bool) {
		switch method {
		case "GET", "HEAD":
			return "read", command.KindRead, true
		case "PUT", "PATCH":
			if readOnly {
				return "", "", false
			}
			return "write", command.KindWrite, true
		case "DELETE":
			if readOnly {
				return "", "", false
			}
			return "delete", command.KindWrite, true
		}
		return "", "", false
	}
	set := func(op, resource string, kind command.Kind) {
		c.Operation, c.Resource, c.Kind = op, resource, kind
	}
	if len(low) == 0 {
		return unknown()
	}
	i := 0
	switch low[0] {
	case "tenants":
		if len(low) == 1 {
			if v, k, ok := verb(true); ok {
				set("microsoft.resources/tenants/"+v, "/tenants", k)
				return c, nil
			}
		}
		return unknown()
	case "providers":
		// tenant or management-group scope: handled by the provider walk
	case "subscriptions":
		if len(low) == 1 {
			if v, k, ok := verb(true); ok {
				set("microsoft.resources/subscriptions/"+v, "/subscriptions", k)
				return c, nil
			}
			return unknown()
		}
		c.Attrs["subscription"] = low[1]
		i = 2
		if len(low) == 2 {
			if v, k, ok := verb(true); ok {
				set("microsoft.resources/subscriptions/"+v, "/"+strings.Join(low, "/"), k)
				return c, nil
			}
			return unknown()
		}
		switch low[2] {
		case "resourcegroups":
			if len(low) == 3 {
				if v, k, ok := verb(true); ok {
					set("microsoft.resources/subscriptions/resourcegroups/"+v, "/"+strings.Join(low, "/"), k)
					return c, nil
				}
				return unknown()
			}
			c.Attrs["resource_group"] = low[3]
			rgID := "/" + strings.Join(low[:4], "/")
			switch {
			case len(low) == 4:
				if v, k, ok := verb(false); ok {
					set("microsoft.resources/subscriptions/resourcegroups/"+v, rgID, k)
					return c, nil
				}
				return unknown()
			case len(low) == 5 && low[4] == "resources":
				if v, k, ok := verb(true); ok {
					set("microsoft.resources/subscriptions/resourcegroups/resources/"+v, rgID, k)
					return c, nil
				}
				return unknown()
			case len(low) == 5 && method == "POST" && low[4] != "providers":
				// exportTemplate, moveResources, validateMoveResources
				c.Attrs["action"] = low[4]
				set("microsoft.resources/subscriptions/resourcegroups/"+low[4]+"/action", rgID, command.KindWrite)
				if low[4] == "exporttemplate" {
					c.Kind = command.KindRead
				}
				return c, nil
			case low[4] == "providers":
				i = 4
			default:
				return unknown()
			}
		case "providers":
			i = 2
		default:
			// subscription-level collections (locations, tagNames,
			// resources…) and long-running operations' status
			// (operationresults/{id}), read only.
			if len(low) == 3 || (len(low) == 4 && (low[2] == "operationresults" || low[2] == "operationstatuses" || low[2] == "tagnames")) {
				if v, k, ok := verb(true); ok {
					set("microsoft.resources/subscriptions/"+low[2]+"/"+v, "/"+strings.Join(low, "/"), k)
					return c, nil
				}
			}
			return unknown()
		}
	default:
		return unknown()
	}
	// low[i] == "providers"
	scope := "/" + strings.Join(low[:i], "/")
	if i == 0 {
		scope = ""
	}
	for {
		if i+1 >= len(low) {
			// GET /subscriptions/x/providers: list resource providers
			if v, k, ok := verb(true); ok && i+1 == len(low) {
				set("microsoft.resources/subscriptions/providers/"+v, "/"+strings.Join(low, "/"), k)
				return c, nil
			}
			return unknown()
		}
		ns := low[i+1]
		j := i + 2
		var types, names []string
		for j < len(low) {
			if low[j] == "providers" && len(types) > 0 && len(types) == len(names) && j+1 < len(low) {
				break // an extension resource under this one
			}
			types = append(types, low[j])
			if j+1 < len(low) {
				names = append(names, low[j+1])
			}
			j += 2
		}
		if j < len(low) {
			scope = "/" + strings.Join(low[:j], "/")
			i = j
			continue
		}
		c.Attrs["provider"] = ns
		if scope != "" {
			c.Attrs["scope"] = scope
		}
		idEnd := len(low)
		var op string
		switch {
		case len(types) == 0:
			// /providers/Microsoft.X: the provider itself
			v, k, ok := verb(true)
			if !ok {
				return unknown()
			}
			set("microsoft.resources/subscriptions/providers/"+v, "/"+strings.Join(low, "/"), k)
			return c, nil
		case len(types) == len(names):
			v, k, ok := verb(false)
			if !ok {
				return unknown()
			}
			op = ns + "/" + strings.Join(types, "/") + "/" + v
			c.Kind = k
		default: // a trailing segment: a collection (GET) or an action (POST)
			last := types[len(types)-1]
			types = types[:len(types)-1]
			switch method {
			case "GET", "HEAD":
				types = append(types, last)
				op = ns + "/" + strings.Join(types, "/") + "/read"
				c.Kind = command.KindRead
			case "POST":
				if len(types) == 0 {
					// POST /subscriptions/x/providers/Microsoft.X/register
					op = ns + "/" + last + "/action"
					c.Kind = command.KindWrite
				} else {
					op = ns + "/" + strings.Join(types, "/") + "/" + last + "/action"
					c.Kind = command.KindWrite
					if strings.HasPrefix(last, "list") || strings.HasPrefix(last, "get") || last == "validate" || last == "whatif" || last == "checknameavailability" {
						c.Kind = command.KindRead
					}
				}
				c.Attrs["action"] = last
				idEnd = len(low) - 1
				if sensitiveAction(types, last) {
					c.Risks = append(c.Risks, RiskSecretRead)
				}
				if strings.HasPrefix(last, "regeneratekey") || last == "regenerateaccesskey" || last == "rotatekey" {
					c.Risks = append(c.Risks, RiskKeyRotation)
				}
				if last == "runcommand" || strings.HasSuffix(last, "runcommand") {
					c.Risks = append(c.Risks, RiskCodeExecution)
				}
			default:
				return unknown()
			}
		}
		c.Attrs["type"] = strings.Join(types, "/")
		if len(names) > 0 {
			c.Attrs["name"] = strings.Join(names, "/")
		}
		c.Operation = op
		c.Resource = "/" + strings.Join(low[:idEnd], "/")
		full := ns + "/" + strings.Join(types, "/")
		first := ""
		if len(types) > 0 {
			first = types[0]
		}
		// Everything Microsoft.Authorization changes is governance (role
		// assignments and their PIM policies, policy assignments and
		// exemptions, locks, elevateAccess), never a plain write that a
		// rule for a resource group's writes would allow.
		if adminTypes[full] || adminTypes[ns+"/"+first] || ns == "microsoft.authorization" {
			if c.Kind == command.KindWrite {
				c.Kind = command.KindAdmin
			}
			if ns == "microsoft.authorization" && c.Kind != command.KindRead && (strings.HasPrefix(first, "role") || c.Attrs["action"] == "elevateaccess") {
				c.Risks = append(c.Risks, RiskRoleAssignment)
			}
		}
		if ns == "microsoft.resources" && first == "deploymentscripts" && c.Kind != command.KindRead {
			c.Risks = append(c.Risks, RiskCodeExecution)
		}
		// Creating a run command or an extension (CustomScript) runs code
		// on the machine, as the runCommand action does; a deployment
		// declaring them is flagged the same way (inspectDeployment).
		if len(types) > 0 && len(types) == len(names) && c.Kind != command.KindRead && (types[len(types)-1] == "runcommands" || types[len(types)-1] == "extensions") {
			c.Risks = append(c.Risks, RiskCodeExecution)
		}
		if ns == "microsoft.resources" && (first == "deployments" || first == "deploymentstacks") && len(body) > 0 && method != "GET" {
			c.Risks = append(c.Risks, inspectDeployment(body)...)
			if len(c.Risks) > 0 {
				c.Kind = command.KindAdmin
			}
		}
		c.Risks = dedupe(c.Risks)
		return c, nil
	}
}

func dedupe(rs []command.Risk) []command.Risk {
	var out []command.Risk
	for _, r := range rs {
		dup := false
		for _, o := range out {
			dup = dup || o == r
		}
		if !dup {
			out = append(out, r)
		}
	}
	return out
}

// inspectDeployment reads a deployment (or validate/whatIf) body. Every
// object with a "type" member anywhere in it is a resource declaration,
// whatever the template's nesting or language version; a linked template
// or an expression for a type is something weir cannot see.
func inspectDeployment(body []byte) []command.Risk {
	var v any
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if d.Decode(&v) != nil {
		return []command.Risk{RiskOpaqueTemplate}
	}
	var out []command.Risk
	var walk func(any)
	walk = func(x any) {
		switch t := x.(type) {
		case map[string]any:
			for k, val := range t {
				lk := strings.ToLower(k)
				if lk == "templatelink" {
					out = append(out, RiskOpaqueTemplate)
				}
				if _, isString := val.(string); lk == "template" && isString {
					out = append(out, RiskOpaqueTemplate) // a template weir would have to parse twice
				}
				if lk == "type" {
					if s, ok := val.(string); ok {
						ls := strings.ToLower(strings.TrimSpace(s))
						switch {
						case strings.HasPrefix(ls, "["):
							out = append(out, RiskOpaqueTemplate)
						case strings.HasSuffix(ls, "roleassignments") || strings.HasSuffix(ls, "roledefinitions"):
							out = append(out, RiskRoleAssignment)
						case strings.HasSuffix(ls, "deploymentscripts"):
							out = append(out, RiskCodeExecution)
						case strings.HasSuffix(ls, "runcommands") || strings.HasSuffix(ls, "extensions"):
							out = append(out, RiskCodeExecution)
						}
					}
				}
				walk(val)
			}
		case []any:
			for _, e := range t {
				walk(e)
			}
		}
	}
	walk(v)
	return out
}

// batchRequest is one entry of an ARM batch (POST /batch).
type batchRequest struct {
	HTTPMethod           string          `json:"httpMethod"`
	Name                 string          `json:"name"`
	URL                  string          `json:"url"`
	Content              json.RawMessage `json:"content"`
	RequestHeaderDetails json.RawMessage `json:"requestHeaderDetails"`
}

const maxBatch = 500

// classifyBatch decides an ARM batch as one request: every sub-request is
// classified like a direct call (H05), and any one that cannot be makes
// the whole batch refused.
func classifyBatch(o *ClassifyOptions, method string, body []byte, out *Classified) (*Classified, error) {
	if method != "POST" {
		return nil, refuse("UnknownOperation", "/batch takes POST only")
	}
	var b struct {
		Requests []batchRequest `json:"requests"`
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(&b); err != nil {
		return nil, refuse("InvalidBatch", "the batch body is not {\"requests\":[…]} with httpMethod, name, url, content and requestHeaderDetails only: %v", err)
	}
	if len(b.Requests) == 0 || len(b.Requests) > maxBatch {
		return nil, refuse("InvalidBatch", "a batch must hold 1 to %d requests, got %d", maxBatch, len(b.Requests))
	}
	for n, r := range b.Requests {
		m := strings.ToUpper(r.HTTPMethod)
		switch m {
		case "GET", "HEAD", "PUT", "PATCH", "DELETE", "POST":
		default:
			return nil, refuse("InvalidBatch", "batch request %d has method %q, which weir does not forward", n, r.HTTPMethod)
		}
		u, err := url.Parse(r.URL)
		if err != nil || u.Fragment != "" || u.User != nil || u.Opaque != "" {
			return nil, refuse("InvalidBatch", "batch request %d has a malformed url", n)
		}
		if u.IsAbs() && (u.Scheme != "https" || !strings.EqualFold(u.Host, o.Host)) {
			return nil, refuse("ForeignHost", "batch request %d addresses %s; a batch may only address %s", n, u.Host, o.Host)
		}
		if u.Host != "" && !u.IsAbs() {
			return nil, refuse("InvalidBatch", "batch request %d has a malformed url", n)
		}
		var content []byte
		if len(r.Content) > 0 && string(r.Content) != "null" {
			content = r.Content
		}
		sub, err := Classify(o, m, u.EscapedPath(), u.RawQuery, content)
		if err != nil {
			if rf, ok := err.(*Refusal); ok {
				rf.Msg = fmt.Sprintf("weir: batch request %d: %s", n, strings.TrimPrefix(rf.Msg, "weir: "))
				return nil, rf
			}
			return nil, err
		}
		if len(sub.Commands) != 1 {
			return nil, refuse("InvalidBatch", "batch request %d is itself a batch", n)
		}
		cmd := sub.Commands[0]
		cmd.Attrs["batch_index"] = fmt.Sprint(n)
		out.Commands = append(out.Commands, cmd)
	}
	return out, nil
}

// classifyVault reads a Key Vault data-plane path.
func classifyVault(host, method string, segs []string) (command.Command, error) {
	low := make([]string, len(segs))
	for i, s := range segs {
		low[i] = strings.ToLower(s)
	}
	vault, _, _ := strings.Cut(strings.ToLower(host), ".")
	c := command.Command{Protocol: "keyvault", Attrs: map[string]string{"vault": vault}}
	unknown := func() (command.Command, error) {
		return c, refuse("UnknownOperation", "weir cannot classify %s %s as a Key Vault operation, so it is refused", method, "/"+strings.Join(segs, "/"))
	}
	if len(low) == 0 || len(low) > 4 {
		return unknown()
	}
	col := low[0]
	var object string // secrets, keys, certificates
	switch col {
	case "secrets", "keys", "certificates":
		object = col
	case "deletedsecrets", "deletedkeys", "deletedcertificates":
		object = strings.TrimPrefix(col, "deleted")
	default:
		return unknown()
	}
	c.Attrs["collection"] = object
	singular := strings.TrimSuffix(object, "s")
	op := func(v string, k command.Kind, res []string) {
		c.Operation = "microsoft.keyvault/vaults/" + object + "/" + v
		c.Kind = k
		c.Resource = vault + "/" + strings.Join(res, "/")
		c.Attrs["operation"] = v
	}
	name := func(i int) {
		c.Attrs["name"] = low[i]
		c.Attrs[singular] = low[i]
	}
	deleted := col != object
	switch {
	case len(low) == 1 && (method == "GET" || method == "HEAD"):
		if deleted {
			op("listdeleted", command.KindRead, low)
		} else {
			op("list", command.KindRead, low)
		}
		return c, nil
	case len(low) == 2 && !deleted && (low[1] == "restore" || low[1] == "import") && method == "POST":
		op(low[1], command.KindWrite, low[:1])
		return c, nil
	case len(low) >= 2 && object == "certificates" && (low[1] == "contacts" || low[1] == "issuers"):
		if len(low) > 2 {
			c.Attrs["name"] = low[2]
		}
		k := command.KindAdmin
		if method == "GET" {
			k = command.KindRead
		}
		op(low[1], k, low)
		return c, nil
	}
	if len(low) < 2 {
		return unknown()
	}
	name(1)
	if deleted {
		switch {
		case len(low) == 2 && method == "GET":
			op("getdeleted", command.KindRead, low)
		case len(low) == 2 && method == "DELETE":
			op("purge", command.KindAdmin, low)
		case len(low) == 3 && low[2] == "recover" && method == "POST":
			op("recover", command.KindWrite, low[:2])
		default:
			return unknown()
		}
		return c, nil
	}
	if len(low) == 2 {
		switch method {
		case "GET", "HEAD":
			op("get", command.KindRead, low)
		case "PUT":
			if object == "keys" {
				op("import", command.KindWrite, low)
			} else {
				op("set", command.KindWrite, low)
			}
		case "PATCH":
			op("update", command.KindWrite, low)
		case "DELETE":
			op("delete", command.KindWrite, low)
		default:
			return unknown()
		}
	} else {
		sub := low[2]
		switch {
		case len(low) == 3 && sub == "versions" && method == "GET":
			op("listversions", command.KindRead, low[:2])
		case len(low) == 3 && sub == "backup" && method == "POST":
			op("backup", command.KindRead, low[:2])
			c.Risks = append(c.Risks, RiskSecretRead)
		case len(low) == 3 && sub == "create" && method == "POST" && object != "secrets":
			op("create", command.KindWrite, low[:2])
		case len(low) == 3 && sub == "import" && method == "POST" && object == "certificates":
			op("import", command.KindWrite, low[:2])
		case len(low) == 3 && sub == "rotate" && method == "POST" && object == "keys":
			op("rotate", command.KindWrite, low[:2])
		case len(low) == 3 && (sub == "rotationpolicy" || sub == "policy" || sub == "pending") && object != "secrets":
			if method == "GET" {
				op(sub, command.KindRead, low)
			} else {
				op(sub, command.KindWrite, low)
			}
		case len(low) == 3 && sub == "release" && method == "POST" && object == "keys":
			op("release", command.KindRead, low[:2])
			c.Risks = append(c.Risks, RiskSecretRead)
		case len(low) == 3:
			// a version
			c.Attrs["version"] = sub
			switch method {
			case "GET":
				op("get", command.KindRead, low)
			case "PATCH":
				op("update", command.KindWrite, low)
			default:
				return unknown()
			}
		case len(low) == 4 && object == "keys" && method == "POST":
			c.Attrs["version"] = sub
			switch low[3] {
			case "encrypt", "decrypt", "sign", "verify", "wrapkey", "unwrapkey", "release":
				op(low[3], command.KindRead, low[:3])
				c.Risks = append(c.Risks, RiskKeyUse)
				if low[3] == "release" {
					// the key itself leaves the vault, as without a version
					c.Risks = append(c.Risks, RiskSecretRead)
				}
			default:
				return unknown()
			}
		default:
			return unknown()
		}
	}
	if object == "secrets" && c.Attrs["operation"] == "get" {
		c.Risks = append(c.Risks, RiskSecretRead)
	}
	return c, nil
}

// classifyFunction reads a Functions host path: HTTP triggers under /api;
// the host's admin and runtime APIs are never forwarded.
func classifyFunction(host, method string, segs []string) (command.Command, error) {
	site, _, _ := strings.Cut(strings.ToLower(host), ".")
	c := command.Command{Protocol: "functions", Attrs: map[string]string{"site": site}}
	if len(segs) < 2 || !strings.EqualFold(segs[0], "api") {
		return c, refuse("UnknownOperation", "weir forwards only HTTP triggers under /api/ to a Functions app; %s is not one", "/"+strings.Join(segs, "/"))
	}
	switch method {
	case "GET", "HEAD", "OPTIONS":
		c.Kind = command.KindRead
	case "POST", "PUT", "PATCH", "DELETE":
		c.Kind = command.KindWrite
	default:
		return c, refuse("UnknownOperation", "method %s is not forwarded to a Functions app", method)
	}
	c.Attrs["function"] = strings.ToLower(segs[1])
	c.Operation = "microsoft.web/sites/functions/invoke"
	// The host matches the route prefix and the function's route
	// case-insensitively (/API/ADMIN is the admin function), so those are
	// lower-cased; route values after them are the function's own: case kept.
	res := append([]string{site, strings.ToLower(segs[0]), strings.ToLower(segs[1])}, segs[2:]...)
	c.Resource = strings.Join(res, "/")
	return c, nil
}
