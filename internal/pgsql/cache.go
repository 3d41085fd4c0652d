package pgsql

import (
	"strings"
	"sync"

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
// The cache holds two generations of at most maxEntries/2 texts each: a hit
// in the older generation moves the entry to the newer one, and when the
// newer one is full the older one is dropped whole. That keeps recently used
// texts without the bookkeeping of an exact LRU.
type Classifier struct {
	gen int // entries per generation

	mu  sync.Mutex
	cur map[string][]command.Command
	old map[string][]command.Command
}

// NewClassifier returns a Classifier caching at most maxEntries texts (at
// least 2 when caching at all). maxEntries <= 0 disables the cache.
func NewClassifier(maxEntries int) *Classifier {
	c := &Classifier{gen: maxEntries / 2}
	if maxEntries > 0 && c.gen < 1 {
		c.gen = 1
	}
	if c.gen > 0 {
		c.cur = make(map[string][]command.Command)
	}
	return c
}

// Classify is Classify(sql), from the cache when sql was seen recently.
//
// The returned slice, and the slices inside its commands, are shared with
// the cache and every other caller that classified the same text: they are
// read-only. Copy before changing anything.
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
	cmds, err := Classify(key)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.put(key, cmds)
	c.mu.Unlock()
	return cmds, nil
}

// Len reports how many texts the cache holds.
func (c *Classifier) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.old)
}

// put stores an entry in the newer generation; c.mu is held.
func (c *Classifier) put(key string, cmds []command.Command) {
	if len(c.cur) >= c.gen {
		c.old = c.cur
		c.cur = make(map[string][]command.Command, c.gen)
	}
	c.cur[key] = cmds
}
