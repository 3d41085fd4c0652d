package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/weir-gw/weir/internal/pgsql"
)

// Column masking (policy.masking.columns). The plan of a statement (which
// output columns derive from a masked column: internal/pgsql's lineage
// resolver) needs the target's catalog, read over a connection of weir's
// own, never the session's (whose protocol stream belongs to the client).
// The catalog is cached per target for masking.catalog_ttl and read again
// at once when a statement names a relation it does not hold (a table
// created since). Plans are cached per statement text and catalog
// generation, so a statement agents repeat is resolved once.
//
// A target whose catalog has no masked column at all gets no plans: no
// relation in it can derive from one (a view over another database is
// not possible without dblink, which is refused). Reading the catalog
// again picks up a table or view created later.

const defaultCatalogTTL = 60 * time.Second

// maxPlanEntries bounds the plan cache of a target; it is cleared whole
// when full (agents repeat few statements).
const maxPlanEntries = 4096

// lineage is the column-masking state of the server.
type lineage struct {
	rules *pgsql.MaskRules
	ttl   time.Duration
}

// targetCatalog is the cached catalog of one target.
type targetCatalog struct {
	t   *upstreamTarget
	lin *lineage

	mu       sync.Mutex
	loading  chan struct{} // closed when the current load ends
	loaded   time.Time
	gen      int
	rels     map[string][]*pgsql.Relation // by relation name
	encoding string                       // server_encoding of weir's catalog connection
	anyMask  bool
	err      error
	plans    map[string]planEntry
	shapes   map[string]planEntry // by pgsql.ShapeKey: plans that hold for every text of a shape
	lastMiss time.Time
}

type planEntry struct {
	gen   int
	plans []pgsql.MaskPlan
	err   error
}

// Lookup implements pgsql.Catalog over one loaded generation.
type catalogSnapshot struct {
	rels     map[string][]*pgsql.Relation
	encoding string
}

// ServerEncoding implements pgsql.ServerEncoder: whether ascii and
// convert_to(x, 'UTF8') may take masked values (they cannot fail in UTF-8).
func (s catalogSnapshot) ServerEncoding() string { return s.encoding }

func (s catalogSnapshot) Lookup(schema, name string) []*pgsql.Relation {
	rels := s.rels[name]
	if schema == "" {
		return rels
	}
	var out []*pgsql.Relation
	for _, r := range rels {
		if r.Schema == schema {
			out = append(out, r)
		}
	}
	return out
}

// The fifth column is a view's definition, the sixth the ancestors of a
// partition or inheritance child (whose rows are its parent's, under
// another name), each on the relation's first row only.
const catalogQuery = `SELECT n.nspname, c.relname, c.relkind::text, a.attname,
  CASE WHEN c.relkind IN ('v','m') AND n.nspname NOT IN ('pg_catalog','information_schema')
       AND row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum) = 1
       THEN pg_get_viewdef(c.oid) END,
  CASE WHEN c.relispartition OR EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid) THEN
    (WITH RECURSIVE anc(oid) AS (
       SELECT inhparent FROM pg_inherits WHERE inhrelid = c.oid
       UNION SELECT i.inhparent FROM pg_inherits i JOIN anc ON i.inhrelid = anc.oid)
     SELECT json_agg(json_build_array(pn.nspname, pc.relname))::text
     FROM anc JOIN pg_class pc ON pc.oid = anc.oid JOIN pg_namespace pn ON pn.oid = pc.relnamespace) END
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r','p','v','m','f')
  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
ORDER BY c.oid, a.attnum`

// load reads the catalog over a connection of weir's own.
func (tc *targetCatalog) load(ctx context.Context) (map[string][]*pgsql.Relation, string, bool, error) {
	cfg := tc.t.base.Copy()
	pw, err := tc.t.cred.Password(ctx)
	if err != nil {
		return nil, "", false, err
	}
	cfg.Password = pw
	cfg.RuntimeParams = map[string]string{"application_name": "weir/catalog"}
	pc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, "", false, err
	}
	defer pc.Close(context.Background())
	// The database's encoding, not the client's: every session of the
	// target reads the same stored text.
	enc := pc.ParameterStatus("server_encoding")
	res := pc.ExecParams(ctx, catalogQuery, nil, nil, nil, nil).Read()
	if res.Err != nil {
		return nil, "", false, res.Err
	}
	rels := map[string][]*pgsql.Relation{}
	var cur *pgsql.Relation
	anyMask := false
	for _, row := range res.Rows {
		schema, name, kind, att := string(row[0]), string(row[1]), row[2], string(row[3])
		if cur == nil || cur.Schema != schema || cur.Name != name {
			cur = &pgsql.Relation{Schema: schema, Name: name, Kind: kind[0]}
			if schema == "pg_catalog" || schema == "information_schema" {
				cur.Kind = 's'
			}
			rels[name] = append(rels[name], cur)
		}
		cur.Columns = append(cur.Columns, att)
		if row[4] != nil {
			cur.Definition = string(row[4])
		}
		if row[5] != nil && cur.Ancestors == nil {
			if err := json.Unmarshal(row[5], &cur.Ancestors); err != nil {
				return nil, "", false, fmt.Errorf("reading the ancestors of %s.%s: %w", schema, name, err)
			}
		}
		if cur.Kind != 's' && tc.lin.rules.MatchRelation(cur, att) != "" {
			anyMask = true
		}
	}
	return rels, enc, anyMask, nil
}

// refresh loads the catalog unless another caller is loading it, in
// which case it waits for that load.
func (tc *targetCatalog) refresh(ctx context.Context) error {
	tc.mu.Lock()
	if ch := tc.loading; ch != nil {
		tc.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		tc.mu.Lock()
		err := tc.err
		tc.mu.Unlock()
		return err
	}
	ch := make(chan struct{})
	tc.loading = ch
	tc.mu.Unlock()

	lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	rels, enc, anyMask, err := tc.load(lctx)
	cancel()

	tc.mu.Lock()
	tc.err = err
	if err == nil {
		tc.rels, tc.encoding, tc.anyMask, tc.loaded = rels, enc, anyMask, time.Now()
		tc.gen++
		tc.plans = map[string]planEntry{}
		tc.shapes = map[string]planEntry{}
	}
	tc.loading = nil
	close(ch)
	tc.mu.Unlock()
	return err
}

// errCatalog is what an agent sees when the catalog cannot be read.
var errCatalog = errors.New("weir could not read the target's catalog, which it needs to mask columns by lineage; weir refuses the statement rather than send unmasked values (the weir operator can find the cause in weir's log)")

// planFor returns the masking plans of a text's statements, or nil when
// the target has no masked column. An error refuses the text: a
// *pgsql.LineageError, a parse error, or errCatalog.
func (tc *targetCatalog) planFor(ctx context.Context, text string) ([]pgsql.MaskPlan, error) {
	for attempt := 0; ; attempt++ {
		tc.mu.Lock()
		stale := tc.rels == nil || time.Since(tc.loaded) > tc.lin.ttl
		tc.mu.Unlock()
		if stale {
			if err := tc.refresh(ctx); err != nil {
				return nil, fmt.Errorf("%w: %v", errCatalog, err)
			}
		}
		tc.mu.Lock()
		if !tc.anyMask {
			tc.mu.Unlock()
			return nil, nil
		}
		gen, snap := tc.gen, catalogSnapshot{rels: tc.rels, encoding: tc.encoding}
		if e, ok := tc.plans[text]; ok && e.gen == gen {
			tc.mu.Unlock()
			return e.plans, e.err
		}
		tc.mu.Unlock()

		// The same statement with other constants (pgbench's simple
		// protocol, an agent's lookups) has the same plan, unless the plan
		// read a constant's value.
		shape, shapeOK := pgsql.ShapeKey(text)
		if shapeOK {
			tc.mu.Lock()
			e, ok := tc.shapes[shape]
			tc.mu.Unlock()
			if ok && e.gen == gen {
				return e.plans, nil
			}
		}
		plans, err := pgsql.PlanMasking(text, snap, tc.lin.rules)
		var le *pgsql.LineageError
		if errors.As(err, &le) && le.Unknown && attempt == 0 {
			// A relation created since the catalog was read: read it again
			// (at most once a second per target), then decide.
			tc.mu.Lock()
			again := time.Since(tc.lastMiss) > time.Second
			if again {
				tc.lastMiss = time.Now()
			}
			tc.mu.Unlock()
			if again {
				if rerr := tc.refresh(ctx); rerr != nil {
					return nil, fmt.Errorf("%w: %v", errCatalog, rerr)
				}
				continue
			}
		}
		tc.mu.Lock()
		if tc.gen == gen && len(text) <= pgsql.MaxCachedText && (le == nil || !le.Unknown) {
			if len(tc.plans) >= maxPlanEntries {
				clear(tc.plans)
			}
			tc.plans[text] = planEntry{gen: gen, plans: plans, err: err}
			if shapeOK && err == nil && !constDependent(plans) {
				if len(tc.shapes) >= maxPlanEntries {
					clear(tc.shapes)
				}
				tc.shapes[shape] = planEntry{gen: gen, plans: plans}
			}
		}
		tc.mu.Unlock()
		return plans, err
	}
}

func constDependent(plans []pgsql.MaskPlan) bool {
	for i := range plans {
		if plans[i].ConstDependent {
			return true
		}
	}
	return false
}
