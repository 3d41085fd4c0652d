package postgres

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/weir-gw/weir/internal/command"
	"github.com/weir-gw/weir/internal/gateway"
)

// bindParams reads the parameter values and formats of a Bind body
// (nil value = NULL). A malformed body yields no parameters: the server
// will reject that Bind anyway.
func bindParams(body []byte) ([][]byte, []int16) {
	_, rest, ok := cstring(body)
	if !ok {
		return nil, nil
	}
	_, rest, ok = cstring(rest)
	if !ok || len(rest) < 2 {
		return nil, nil
	}
	nf := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if len(rest) < 2*nf+2 {
		return nil, nil
	}
	formats := make([]int16, nf)
	for i := range formats {
		formats[i] = int16(binary.BigEndian.Uint16(rest[2*i:]))
	}
	rest = rest[2*nf:]
	np := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	params := make([][]byte, np)
	for i := 0; i < np; i++ {
		if len(rest) < 4 {
			return nil, nil
		}
		l := int32(binary.BigEndian.Uint32(rest))
		rest = rest[4:]
		if l < 0 {
			continue
		}
		if int(l) > len(rest) {
			return nil, nil
		}
		params[i] = append([]byte(nil), rest[:l]...)
		rest = rest[l:]
	}
	return params, formats
}

// bound is what the gateway reads when a request goes to a human: the
// Bind parameters and the blast-radius preview. Held in the connection and
// filled per request, so the common path allocates nothing for it.
type bound struct {
	c    *clientConn
	cmds []command.Command
	bind []byte // the portal's Bind body; nil for a simple Query
}

var _ gateway.Bound = (*bound)(nil)

func (b *bound) Params() [][]byte {
	p, _ := bindParams(b.bind)
	return p
}

// Preview is PostgreSQL's EXPLAIN estimate of the rows each statement
// touches, computed on a separate short-lived connection (EXPLAIN without
// ANALYZE executes nothing), never on the agent's session.
func (b *bound) Preview(ctx context.Context) string {
	params, formats := bindParams(b.bind)
	return b.c.preview(ctx, b.cmds, params, formats)
}

func (c *clientConn) preview(ctx context.Context, cmds []command.Command, params [][]byte, formats []int16) string {
	cfg := c.target.base.Copy()
	pw, err := c.target.cred.Password(ctx)
	if err != nil {
		return "no estimate (upstream credential unavailable)"
	}
	cfg.Password = pw
	cfg.RuntimeParams = map[string]string{"application_name": "weir/preview"}
	pc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return "no estimate (could not connect for EXPLAIN)"
	}
	defer pc.Close(context.Background())
	var parts []string
	for i := range cmds {
		if cmds[i].Kind != command.KindWrite && cmds[i].Kind != command.KindRead {
			parts = append(parts, cmds[i].Verb+": no estimate")
			continue
		}
		res := pc.ExecParams(ctx, "EXPLAIN (FORMAT JSON) "+cmds[i].Text, params, nil, formats, nil).Read()
		if res.Err != nil || len(res.Rows) == 0 || len(res.Rows[0]) == 0 {
			parts = append(parts, cmds[i].Verb+": no estimate")
			continue
		}
		parts = append(parts, summarizePlan(cmds[i].Verb, res.Rows[0][0]))
	}
	return "EXPLAIN estimate: " + strings.Join(parts, "; ")
}

func summarizePlan(verb string, planJSON []byte) string {
	var plans []struct {
		Plan struct {
			NodeType string  `json:"Node Type"`
			Relation string  `json:"Relation Name"`
			Rows     float64 `json:"Plan Rows"`
			Plans    []struct {
				NodeType string  `json:"Node Type"`
				Relation string  `json:"Relation Name"`
				Rows     float64 `json:"Plan Rows"`
			} `json:"Plans"`
		} `json:"Plan"`
	}
	if err := json.Unmarshal(planJSON, &plans); err != nil || len(plans) == 0 {
		return verb + ": no estimate"
	}
	p := plans[0].Plan
	rows, rel := p.Rows, p.Relation
	// A ModifyTable node reports 0 rows; the rows it will touch are its
	// input's estimate.
	if p.NodeType == "ModifyTable" && len(p.Plans) > 0 {
		rows = p.Plans[0].Rows
	}
	if rel != "" {
		return fmt.Sprintf("%s on %s, about %.0f rows", verb, rel, rows)
	}
	return fmt.Sprintf("%s, about %.0f rows", verb, rows)
}
