package mcp

import (
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/weir-gw/weir/internal/config"
)

func TestAzureRequestTarget(t *testing.T) {
	hosts := []string{"management.azure.com", "arm.example.azure.net"}
	for _, tc := range []struct {
		path, host, uri, bad string
	}{
		{"/subscriptions?api-version=2022-12-01", "management.azure.com", "/subscriptions?api-version=2022-12-01", ""},
		{"  /subscriptions?api-version=2022-12-01\n", "management.azure.com", "/subscriptions?api-version=2022-12-01", ""},
		// A nextLink the proxy rewrote to the host the agent uses.
		{"https://management.azure.com/subscriptions/x/resourcegroups?api-version=2022-09-01&$skiptoken=2", "management.azure.com", "/subscriptions/x/resourcegroups?api-version=2022-09-01&$skiptoken=2", ""},
		{"https://MANAGEMENT.azure.com:443/subscriptions?api-version=2022-12-01", "management.azure.com", "/subscriptions?api-version=2022-12-01", ""},
		{"https://arm.example.azure.net/a", "arm.example.azure.net", "/a", ""},
		// Escaping is kept as given: the proxy judges it (H01).
		{"/subscriptions/a%2Fb?api-version=1", "management.azure.com", "/subscriptions/a%2Fb?api-version=1", ""},
		{"https://management.azure.com/a%2Fb?x=1", "management.azure.com", "/a%2Fb?x=1", ""},
		{"", "", "", "path is empty"},
		{"subscriptions?api-version=1", "", "", "must start with /"},
		{"https://evil.example.net/subscriptions", "", "", "not a URL of this target"},
		{"http://management.azure.com/subscriptions", "", "", "not a URL of this target"},
		{"https://user@management.azure.com/subscriptions", "", "", "not a URL of this target"},
		{"https://management.azure.com:8443/subscriptions", "", "", "not a URL of this target"},
		{"https://management.azure.com.evil.net/subscriptions", "", "", "not a URL of this target"},
		{"//evil.example.net/x", "", "", "starts with //"},
		{"https://management.azure.com//evil.example.net/x", "", "", "starts with //"},
		{"/a b", "", "", "space"},
		{"/a\r\nHost: evil", "", "", "control character"},
		{"/a#frag", "", "", "#"},
		{"/" + strings.Repeat("a", maxAzurePath), "", "", "at most"},
	} {
		host, uri, f := azureRequestTarget(hosts, tc.path)
		if tc.bad != "" {
			if f == nil || !strings.Contains(f.Error, tc.bad) || f.NextStep == "" {
				t.Errorf("%q: %v %q %+v, want an error with %q", tc.path, host, uri, f, tc.bad)
			}
			continue
		}
		if f != nil || host != tc.host || uri != tc.uri {
			t.Errorf("%q: %q %q %+v, want %q %q", tc.path, host, uri, f, tc.host, tc.uri)
		}
	}
}

// Whatever the path, the tool either refuses it or names one of the
// target's hosts and an origin-form target without line breaks.
func FuzzAzureRequestTarget(f *testing.F) {
	for _, s := range []string{"/subscriptions?api-version=2022-12-01", "https://management.azure.com/x?y", "//x", "https://a@b/c", "https://management.azure.com", "/\x00", "\xff"} {
		f.Add(s)
	}
	hosts := []string{"management.azure.com"}
	f.Fuzz(func(t *testing.T, path string) {
		host, uri, fail := azureRequestTarget(hosts, path)
		if fail != nil {
			if host != "" || uri != "" || fail.Error == "" || !utf8.ValidString(fail.Error) && utf8.ValidString(path) {
				t.Fatalf("%q: refusal %+v with %q %q", path, fail, host, uri)
			}
			return
		}
		if host != "management.azure.com" || !strings.HasPrefix(uri, "/") || strings.HasPrefix(uri, "//") || strings.ContainsAny(uri, "\r\n #") {
			t.Fatalf("%q: host %q uri %q", path, host, uri)
		}
	})
}

func TestAzureBody(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want string
		bad  bool
	}{
		{nil, "", false},
		{"", "", false},
		{"  ", "", false},
		// Text is sent byte for byte: key order, duplicates (which the
		// proxy refuses, H13) and large numbers are the model's.
		{`{"b":1,"a":12345678901234567890}`, `{"b":1,"a":12345678901234567890}`, false},
		{`{"a":`, "", true},
		{"not json", "", true},
		{map[string]any{"location": "westeurope", "tags": map[string]any{"env": "dev"}}, `{"location":"westeurope","tags":{"env":"dev"}}`, false},
		{[]any{1.0, "x"}, `[1,"x"]`, false},
	} {
		got, f := azureBody(tc.in)
		if (f != nil) != tc.bad || string(got) != tc.want {
			t.Errorf("azureBody(%#v) = %q %+v, want %q bad=%v", tc.in, got, f, tc.want, tc.bad)
		}
	}
}

func TestExplainAzureError(t *testing.T) {
	rules := []config.Rule{{Name: "no-role-assignments", Action: "deny"}, {Name: "review-secret-reads", Action: "review"}}
	for _, tc := range []struct {
		name       string
		status     int
		weir       bool
		body       string
		code, rule string
		action     string
		approval   int64
		next       string
	}{
		{"denied", 403, true, `{"error":{"code":"AuthorizationFailed","message":"weir: PUT microsoft.authorization/roleassignments/write [role_assignment] is denied by policy rule \"no-role-assignments\": agents never change who may do what"}}`,
			"AuthorizationFailed", "no-role-assignments", "deny", 0, "do not retry it unchanged"},
		{"approval opened", 403, true, `{"error":{"code":"AuthorizationFailed","message":"weir: this command needs a human's approval under policy rule \"review-secret-reads\"; it was not run. Approval request 17 was opened; once an approver runs ` + "`weir approvals approve 17`" + `, send exactly the same command again"}}`,
			"AuthorizationFailed", "review-secret-reads", "review", 17, "approval_status {\"id\": 17"},
		{"approval pending", 403, true, `{"error":{"code":"AuthorizationFailed","message":"weir: this command is waiting for approval (request 18, rule \"review-secret-reads\"). Send it again unchanged"}}`,
			"AuthorizationFailed", "review-secret-reads", "review", 18, "exactly the same target, method, path, body and reveal"},
		{"approval denied", 403, true, `{"error":{"code":"AuthorizationFailed","message":"weir: approval request 19 was denied by alice: no. The command was not run."}}`,
			"AuthorizationFailed", "weir", "", 19, "a person denied it"},
		{"default deny", 403, true, `{"error":{"code":"AuthorizationFailed","message":"weir: DELETE x is not allowed: no policy rule allows it (default deny)."}}`,
			"AuthorizationFailed", "default-deny", "", 0, "do not retry it unchanged"},
		{"review without approvals", 403, true, `{"error":{"code":"AuthorizationFailed","message":"weir: x needs a human's approval under policy rule \"review-secret-reads\""}}`,
			"AuthorizationFailed", "review-secret-reads", "review", 0, "ask an operator"},
		{"form", 400, true, `{"error":{"code":"InvalidApiVersion","message":"weir: give exactly one api-version"}}`,
			"InvalidApiVersion", "weir", "", 0, "before any policy rule"},
		{"upstream refused", 502, true, `{"error":{"code":"WeirUpstreamRefused","message":"weir: the upstream response links to another host (nextLink), which weir refuses"}}`,
			"WeirUpstreamRefused", "weir", "", 0, "could not pass the answer on"},
		{"token", 401, true, `{"error":{"code":"InvalidAuthenticationToken","message":"weir: the token was revoked"}}`,
			"InvalidAuthenticationToken", "", "", 0, "issue a new one"},
		{"not weir's json", 403, true, `<html>`, "", "weir", "", 0, "fix the path"},
		{"azure 404", 404, false, `{"error":{"code":"ResourceGroupNotFound","message":"Resource group 'x' could not be found."}}`,
			"ResourceGroupNotFound", "", "", 0, "check the path"},
		{"azure api-version", 400, false, `{"error":{"code":"NoRegisteredProviderFound","message":"No registered resource provider found for API version '2019-01-01'"}}`,
			"NoRegisteredProviderFound", "", "", 0, "api-version"},
		{"azure text", 500, false, "upstream exploded", "", "", "", 0, "try again later"},
	} {
		f := explainAzureError(tc.status, tc.weir, []byte(tc.body), rules)
		if f.Code != tc.code || f.Rule != tc.rule || f.RuleAction != tc.action || f.ApprovalRequestID != tc.approval || !strings.Contains(f.NextStep, tc.next) || f.Error == "" || f.Status != tc.status {
			t.Errorf("%s: %+v", tc.name, f)
		}
	}
	// Azure's own text error is shown, bounded.
	f := explainAzureError(500, false, []byte(strings.Repeat("x", 10*maxAzureErrorBody)), nil)
	if len(f.Body) > maxAzureErrorBody+len("…") || f.Body == "" {
		t.Errorf("error body of %d bytes", len(f.Body))
	}
}

func FuzzExplainAzureError(f *testing.F) {
	f.Add(403, true, []byte(`{"error":{"code":"AuthorizationFailed","message":"approval request 99999999999999999999 rule \"x\""}}`))
	f.Add(404, false, []byte(`{"error":{"code":1}}`))
	f.Add(0, true, []byte{})
	f.Fuzz(func(t *testing.T, status int, weir bool, body []byte) {
		fl := explainAzureError(status, weir, body, []config.Rule{{Name: "x", Action: "deny"}})
		if fl.Error == "" || fl.NextStep == "" {
			t.Fatalf("no error or next step: %+v", fl)
		}
	})
}

func TestAzureAnswer(t *testing.T) {
	body := []byte(`{"value":[{"name":"é-rg"}],"nextLink":"https://management.azure.com/subscriptions/s/resourcegroups?api-version=2022-09-01&$skiptoken=2"}`)
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}}
	in := azureRequestIn{Path: "/subscriptions/s/resourcegroups?api-version=2022-09-01", MaxBytes: 1 << 20}
	out := azureAnswer(in, "arm", "GET", resp, body, in.MaxBytes)
	if out.Truncated || out.Body != string(body) || out.TotalBytes != len(body) || out.NextLink == "" || !strings.Contains(out.Continuation, out.NextLink) {
		t.Fatalf("whole answer: %+v", out)
	}
	// Windows that fall inside a rune skip to the next one and add up to
	// the whole answer.
	var whole strings.Builder
	for off, n := int64(0), 0; ; n++ {
		in.Offset = off
		out = azureAnswer(in, "arm", "GET", resp, body, 13)
		if !utf8.ValidString(out.Body) || n > 100 {
			t.Fatalf("window at %d: %+v", off, out)
		}
		whole.WriteString(out.Body)
		if !out.Truncated {
			break
		}
		if out.NextLink == "" || !strings.Contains(out.Continuation, "offset") {
			t.Fatalf("a cut window lost the continuation: %+v", out)
		}
		off = out.NextOffset
	}
	if whole.String() != string(body) {
		t.Fatalf("windows: %q", whole.String())
	}
	in.Offset = int64(len(body)) + 5
	out = azureAnswer(in, "arm", "GET", resp, body, 13)
	if out.Body != "" || out.Truncated || !strings.Contains(renderAzure(out), "past the end") {
		t.Fatalf("past the end: %+v", out)
	}
	// A long-running operation tells how to follow it.
	resp = &http.Response{StatusCode: 202, Header: http.Header{"Azure-Asyncoperation": {"https://management.azure.com/op/1?api-version=2022-09-01"}, "Retry-After": {"10"}}}
	out = azureAnswer(azureRequestIn{Path: "/x"}, "arm", "DELETE", resp, nil, 100)
	text := renderAzure(out)
	if !strings.Contains(text, "(no body)") || !strings.Contains(text, "Retry-After: 10") || !strings.Contains(out.Continuation, "GET https://management.azure.com/op/1") {
		t.Fatalf("202: %+v\n%s", out, text)
	}
}

func TestTruncate(t *testing.T) {
	if got := truncate("ééé", 3); got != "é…" {
		t.Errorf("truncate = %q", got)
	}
	if got := truncate("abc", 3); got != "abc" {
		t.Errorf("truncate = %q", got)
	}
}

func TestSummaryAzure(t *testing.T) {
	l := &TargetList{Agent: "ci-bot", Targets: []TargetInfo{{Name: "arm", Kind: config.KindAzureARM, Tools: []string{"azure_request", "approval_status"},
		Typical: []TypicalVerdict{{What: "secret read (listKeys of a storage account)", Verdict: "needs approval", Rule: "review-secret-reads"}}}},
		Rules: []PolicyRule{{Name: "review-secret-reads", Action: "review", Mode: "async"}}}
	got := summary(l, 0, true)
	for _, want := range []string{"arm (azure-arm): tools azure_request, approval_status\n", "secret read (listKeys of a storage account): needs approval (rule review-secret-reads)",
		"made-up Azure resource", "azure_request takes no request_approval"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	l.Targets[0].Tools = nil
	if got := summary(l, 0, true); strings.Contains(got, "azure_request takes") {
		t.Errorf("the azure_request hint without the tool:\n%s", got)
	}
}
