package pgsql

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/weir-gw/weir/internal/command"
)

// MaxCachedText is the longest text a Classifier caches, in bytes. Agents
// repeat short statements; long ones are rarely repeated byte for byte and
// would make the cache's memory hard to bound.
const MaxCachedText = 8 << 10

// Classifier is Classify with a bounded cache keyed by the exact text, so
// that a statement an agent repeats is parsed once. It is safe for
// concurrent use. Errors are not cached.
//
// Behind the exact-text cache sits a shape cache (see shape.go): a text
// missing from the first is scanned with PostgreSQL's lexer, and when a
// text of the same token sequence up to the values of its constants was
// classified in full, and that classification provably does not depend on
// those values, its commands are reused with the new text's statement
// texts, without parsing. Its results are exactly Classify's.
//
// Each cache holds two generations of at most maxEntries/2 entries each: a
// hit in the older generation moves the entry to the newer one, and when the
// newer one is full the older one is dropped whole. That keeps recently used
// texts without the bookkeeping of an exact LRU.
type Classifier struct {
	gen int // entries per generation

	mu  sync.Mutex
	cur map[string][]command.Command
	old map[string][]command.Command

	smu  sync.Mutex
	scur map[string]*shapeEntry
	sold map[string]*shapeEntry

	// noShape turns the shape cache off (benchmarks compare with it).
	noShape bool
	// shapeHits counts texts classified from the shape cache (tests).
	shapeHits atomic.Int64
}

// NewClassifier returns a Classifier caching at most maxEntries texts and
// maxEntries shapes (at least 2 each when caching at all). maxEntries <= 0
// disables both caches.
func NewClassifier(maxEntries int) *Classifier {
	c := &Classifier{gen: maxEntries / 2}
	if maxEntries > 0 && c.gen < 1 {
		c.gen = 1
	}
	if c.gen > 0 {
		c.cur = make(map[string][]command.Command)
		c.scur = make(map[string]*shapeEntry)
	}
	return c
}

// Classify is Classify(sql), from the cache when sql, or a text differing
// from sql only in constants, was seen recently.
//
// The returned slice, and the slices inside its commands, are shared with
// the cache and every other caller that classified the same text: they are
// read-only. Copy before changing anything. A text classified from its
// shape gets a slice of its own; the slices inside its commands are shared
// with the other texts of its shape.
func (c *Classifier) Classify(sql string) ([]command.Command, error) {
	if c.gen == 0 || len(sql) > MaxCachedText {
		return Classify(sql)
	}
	c.mu.Lock()
	if cmds, ok := c.cur[sql]; ok {
		c.mu.Unlock()
		return cmds, nil
	}
	if cmds, ok := c.old[sql]; ok {
		delete(c.old, sql)
		c.put(sql, cmds)
		c.mu.Unlock()
		return cmds, nil
	}
	c.mu.Unlock()

	// The key and the commands' Text (substrings of the text classified)
	// outlive this call: do not keep the caller's memory, which a wire
	// reader may reuse.
	key := strings.Clone(sql)
	cmds, err := c.classifyMiss(key)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.put(key, cmds)
	c.mu.Unlock()
	return cmds, nil
}

var scanPool = sync.Pool{New: func() any { return new(shapeScan) }}

// classifyMiss classifies a text missing from the exact-text cache: from
// the shape cache when it can, else in full, storing the shape when its
// classification does not depend on constants.
func (c *Classifier) classifyMiss(sql string) ([]command.Command, error) {
	if c.noShape || checkText(sql) != nil {
		return Classify(sql)
	}
	s := scanPool.Get().(*shapeScan)
	defer scanPool.Put(s)
	if !s.scan(sql) {
		return Classify(sql) // the lexer's error, or a text the shape path does not take
	}
	if e := c.getShape(s.key); e != nil {
		if cmds, ok := e.commands(sql, s.toks); ok {
			c.shapeHits.Add(1)
			return cmds, nil
		}
	}
	var tr constTrack
	cmds, err := classify(sql, &tr)
	if err != nil {
		return nil, err
	}
	if e := newShapeEntry(sql, s.toks, cmds, &tr); e != nil {
		c.putShape(string(s.key), e)
	}
	return cmds, nil
}

// Len reports how many texts the exact-text cache holds.
func (c *Classifier) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.old)
}

// ShapeLen reports how many shapes the shape cache holds.
func (c *Classifier) ShapeLen() int {
	c.smu.Lock()
	defer c.smu.Unlock()
	return len(c.scur) + len(c.sold)
}

// put stores an entry in the newer generation; c.mu is held.
func (c *Classifier) put(key string, cmds []command.Command) {
	if len(c.cur) >= c.gen {
		c.old = c.cur
		c.cur = make(map[string][]command.Command, c.gen)
	}
	c.cur[key] = cmds
}

// getShape returns the entry of a shape key, or nil.
func (c *Classifier) getShape(key []byte) *shapeEntry {
	c.smu.Lock()
	defer c.smu.Unlock()
	if e, ok := c.scur[string(key)]; ok {
		return e
	}
	if e, ok := c.sold[string(key)]; ok {
		k := string(key)
		delete(c.sold, k)
		c.putShapeLocked(k, e)
		return e
	}
	return nil
}

func (c *Classifier) putShape(key string, e *shapeEntry) {
	c.smu.Lock()
	c.putShapeLocked(key, e)
	c.smu.Unlock()
}

// putShapeLocked stores a shape in the newer generation; c.smu is held.
func (c *Classifier) putShapeLocked(key string, e *shapeEntry) {
	if len(c.scur) >= c.gen {
		c.sold = c.scur
		c.scur = make(map[string]*shapeEntry, c.gen)
	}
	c.scur[key] = e
}
