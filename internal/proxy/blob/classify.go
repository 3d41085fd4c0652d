package blob

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/weir-gw/weir/internal/command"
)

// Risks a Blob command can carry, for rules to refuse or review on their own.
const (
	// RiskMintsCredential: the request creates a credential (a user
	// delegation key signs SAS tokens that bypass weir).
	RiskMintsCredential command.Risk = "mints_credential"
	// RiskCopy: the request makes Azure read another blob (x-ms-copy-source).
	RiskCopy command.Risk = "copy"
	// RiskPublicAccess: the request changes who may read a container
	// without any credential (container ACL, public access level).
	RiskPublicAccess command.Risk = "public_access"
)

// queryParams are the query parameters weir knows the meaning of; any
// other one is refused, since it could change what the request does.
var queryParams = map[string]bool{
	"comp": true, "restype": true, "prefix": true, "delimiter": true, "marker": true, "maxresults": true,
	"include": true, "timeout": true, "snapshot": true, "versionid": true, "blockid": true, "blocklisttype": true,
	"where": true, "showonly": true, "prevsnapshot": true, "tier": true,
}

// sasParams mark a shared access signature: a credential of its own that
// weir does not accept from an agent.
var sasParams = []string{"sig", "sv", "se", "sp", "skoid", "sktid", "skt", "ske", "sks", "skv", "ss", "srt", "sr", "spr", "sip"}

// classify turns one request (or one batch sub-request) into the Command
// the gateway decides on. An error is a refusal the agent can act on.
func classify(method string, p Path, q url.Values, h http.Header, copyCheck func(src string) (string, error)) (command.Command, error) {
	for k, vs := range q {
		lk := strings.ToLower(k)
		if !queryParams[lk] {
			return command.Command{}, fmt.Errorf("the query parameter %s is not one weir understands, so the request was refused; remove it", quote(k))
		}
		if k != lk {
			return command.Command{}, fmt.Errorf("query parameter names must be lower case (got %s)", quote(k))
		}
		if len(vs) != 1 {
			return command.Command{}, fmt.Errorf("the query parameter %s appears more than once", quote(k))
		}
	}
	comp, restype := q.Get("comp"), q.Get("restype")
	c := command.Command{Protocol: "blob", Method: method, Resource: p.Resource()}
	op, kind := "", command.Kind("")
	level := "blob"
	switch {
	case p.Container == "":
		level = "account"
	case p.Blob == "":
		level = "container"
	}
	unknown := func() (command.Command, error) {
		what := method + " on the " + level
		if comp != "" {
			what += " with comp=" + comp
		}
		if restype != "" {
			what += " with restype=" + restype
		}
		return command.Command{}, fmt.Errorf("weir does not know the Blob operation %s, so it was refused; use a documented Blob REST operation", what)
	}
	if restype == "account" && comp == "properties" && (method == http.MethodGet || method == http.MethodHead) {
		op, kind = "GetAccountInfo", command.KindRead
	} else {
		switch level {
		case "account":
			switch {
			case method == http.MethodGet && comp == "list" && restype == "":
				op, kind = "ListContainers", command.KindRead
			case restype == "service" && comp == "properties" && method == http.MethodGet:
				op, kind = "GetBlobServiceProperties", command.KindRead
			case restype == "service" && comp == "properties" && method == http.MethodPut:
				op, kind = "SetBlobServiceProperties", command.KindAdmin
			case restype == "service" && comp == "stats" && method == http.MethodGet:
				op, kind = "GetBlobServiceStats", command.KindRead
			case restype == "service" && comp == "userdelegationkey" && method == http.MethodPost:
				op, kind = "GetUserDelegationKey", command.KindAdmin
				c.Risks = append(c.Risks, RiskMintsCredential)
			case comp == "blobs" && method == http.MethodGet && restype == "":
				op, kind = "FindBlobsByTags", command.KindRead
			case comp == "batch" && method == http.MethodPost:
				op = "BlobBatch"
			default:
				return unknown()
			}
		case "container":
			if restype != "container" {
				if method == http.MethodPost && comp == "batch" {
					return unknown() // a container batch carries restype=container
				}
				return command.Command{}, fmt.Errorf("a request on container %s needs restype=container (or name a blob)", quote(p.Container))
			}
			switch {
			case comp == "" && method == http.MethodPut:
				op, kind = "CreateContainer", command.KindWrite
				if h.Get("x-ms-blob-public-access") != "" {
					c.Risks = append(c.Risks, RiskPublicAccess)
				}
			case comp == "" && (method == http.MethodGet || method == http.MethodHead):
				op, kind = "GetContainerProperties", command.KindRead
			case comp == "" && method == http.MethodDelete:
				op, kind = "DeleteContainer", command.KindWrite
			case comp == "metadata" && (method == http.MethodGet || method == http.MethodHead):
				op, kind = "GetContainerMetadata", command.KindRead
			case comp == "metadata" && method == http.MethodPut:
				op, kind = "SetContainerMetadata", command.KindWrite
			case comp == "acl" && (method == http.MethodGet || method == http.MethodHead):
				op, kind = "GetContainerACL", command.KindRead
			case comp == "acl" && method == http.MethodPut:
				op, kind = "SetContainerACL", command.KindAdmin
				c.Risks = append(c.Risks, RiskPublicAccess)
			case comp == "lease" && method == http.MethodPut:
				op, kind = "LeaseContainer", command.KindWrite
			case comp == "list" && method == http.MethodGet:
				op, kind = "ListBlobs", command.KindRead
			case comp == "blobs" && method == http.MethodGet:
				op, kind = "FindBlobsByTags", command.KindRead
			case comp == "undelete" && method == http.MethodPut:
				op, kind = "RestoreContainer", command.KindWrite
			case comp == "batch" && method == http.MethodPost:
				op = "BlobBatch"
			default:
				return unknown()
			}
		default:
			if restype != "" {
				return unknown()
			}
			copySrc := h.Get("x-ms-copy-source")
			switch comp {
			case "":
				switch method {
				case http.MethodGet:
					op, kind = "GetBlob", command.KindRead
				case http.MethodHead:
					op, kind = "GetBlobProperties", command.KindRead
				case http.MethodDelete:
					op, kind = "DeleteBlob", command.KindWrite
				case http.MethodPut:
					switch {
					case copySrc != "" && h.Get("x-ms-blob-type") != "":
						op, kind = "PutBlobFromURL", command.KindWrite
					case copySrc != "" && strings.EqualFold(h.Get("x-ms-requires-sync"), "true"):
						op, kind = "CopyBlobFromURL", command.KindWrite
					case copySrc != "":
						op, kind = "CopyBlob", command.KindWrite
					case h.Get("x-ms-blob-type") != "":
						op, kind = "PutBlob", command.KindWrite
					default:
						return command.Command{}, fmt.Errorf("a PUT of a blob needs x-ms-blob-type (Put Blob) or x-ms-copy-source (Copy Blob)")
					}
				default:
					return unknown()
				}
			case "metadata":
				op, kind = map[string]string{http.MethodGet: "GetBlobMetadata", http.MethodHead: "GetBlobMetadata", http.MethodPut: "SetBlobMetadata"}[method], command.KindRead
				if method == http.MethodPut {
					kind = command.KindWrite
				}
			case "properties":
				op, kind = map[string]string{http.MethodPut: "SetBlobProperties"}[method], command.KindWrite
			case "lease":
				op, kind = map[string]string{http.MethodPut: "LeaseBlob"}[method], command.KindWrite
			case "snapshot":
				op, kind = map[string]string{http.MethodPut: "SnapshotBlob"}[method], command.KindWrite
			case "block":
				op, kind = map[string]string{http.MethodPut: "PutBlock"}[method], command.KindWrite
				if copySrc != "" && op != "" {
					op = "PutBlockFromURL"
				}
			case "blocklist":
				op, kind = map[string]string{http.MethodPut: "PutBlockList", http.MethodGet: "GetBlockList"}[method], command.KindWrite
				if method == http.MethodGet {
					kind = command.KindRead
				}
			case "appendblock":
				op, kind = map[string]string{http.MethodPut: "AppendBlock"}[method], command.KindWrite
				if copySrc != "" && op != "" {
					op = "AppendBlockFromURL"
				}
			case "page":
				op, kind = map[string]string{http.MethodPut: "PutPage"}[method], command.KindWrite
				if copySrc != "" && op != "" {
					op = "PutPageFromURL"
				}
			case "pagelist":
				op, kind = map[string]string{http.MethodGet: "GetPageRanges"}[method], command.KindRead
			case "tier":
				op, kind = map[string]string{http.MethodPut: "SetBlobTier"}[method], command.KindWrite
			case "tags":
				op, kind = map[string]string{http.MethodGet: "GetBlobTags", http.MethodPut: "SetBlobTags"}[method], command.KindRead
				if method == http.MethodPut {
					kind = command.KindWrite
				}
			case "undelete":
				op, kind = map[string]string{http.MethodPut: "UndeleteBlob"}[method], command.KindWrite
			case "copy":
				op, kind = map[string]string{http.MethodPut: "AbortCopyBlob"}[method], command.KindWrite
			case "expiry":
				op, kind = map[string]string{http.MethodPut: "SetBlobExpiry"}[method], command.KindWrite
			case "immutabilityPolicies", "legalhold":
				op, kind = map[string]string{http.MethodPut: "SetBlobImmutability", http.MethodDelete: "DeleteBlobImmutability"}[method], command.KindAdmin
			default:
				return unknown()
			}
			if op == "" {
				return unknown()
			}
			if copySrc != "" {
				if copyCheck == nil {
					return command.Command{}, fmt.Errorf("copy sources are not allowed here")
				}
				src, err := copyCheck(copySrc)
				if err != nil {
					return command.Command{}, err
				}
				// A copy is an admin command, not a write: Azure reads the
				// source where weir masks nothing, and the writer sets the
				// Content-Type that decides masking, so a rule granting
				// writes must not grant an unmasked read with them.
				kind = command.KindAdmin
				c.Risks = append(c.Risks, RiskCopy)
				c.Reads = append(c.Reads, src)
				if c.Attrs == nil {
					c.Attrs = map[string]string{}
				}
				c.Attrs["copy_source"] = src
			}
		}
	}
	c.Verb, c.Operation, c.Kind = op, op, kind
	if op == "BlobBatch" {
		return c, nil // the batch handler classifies the parts
	}
	if c.Attrs == nil {
		c.Attrs = map[string]string{}
	}
	c.Attrs["level"] = level
	if p.Container != "" {
		c.Attrs["container"] = p.Container
	}
	if p.Blob != "" {
		c.Attrs["blob"] = p.Blob
	}
	for _, k := range []string{"prefix", "snapshot", "versionid"} {
		if v := q.Get(k); v != "" {
			c.Attrs[k] = v
		}
	}
	if h.Get("Range") != "" || h.Get("x-ms-range") != "" {
		c.Attrs["range"] = "true"
	}
	// An account-level command touches the whole account (Find Blobs by
	// Tags lists every container's blobs): it names the account, "", so a
	// rule over reads or written (reads.all(r, r.startsWith("reports/")))
	// does not take an empty list for "nothing outside reports/".
	switch {
	case kind == command.KindRead:
		c.Reads = append(c.Reads, p.Resource())
	default:
		c.Writes = append(c.Writes, p.Resource())
	}
	c.Text = describe(method, p, q)
	c.Fingerprint = "blob:" + op
	return c, nil
}

// describe is the request line as the audit log shows it: method,
// canonical resource and the query, sorted.
func describe(method string, p Path, q url.Values) string {
	s := method + " /" + p.Resource()
	if len(q) > 0 {
		keys := make([]string, 0, len(q))
		for k := range q {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + q.Get(k)
		}
		s += "?" + strings.Join(parts, "&")
	}
	return s
}
