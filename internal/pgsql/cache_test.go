package pgsql

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"unsafe"
)

func TestClassifierCaches(t *testing.T) {
	c := NewClassifier(16)
	a, err := c.Classify("SELECT * FROM t WHERE id = 1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Classify("SELECT * FROM t WHERE id = 1")
	if err != nil {
		t.Fatal(err)
	}
	if &a[0] != &b[0] {
		t.Error("second call did not come from the cache")
	}
	if c.Len() != 1 {
		t.Errorf("Len = %d, want 1", c.Len())
	}
	direct, _ := Classify("SELECT * FROM t WHERE id = 1")
	if fmt.Sprint(direct) != fmt.Sprint(a) {
		t.Errorf("cached %+v differs from Classify %+v", a, direct)
	}
}

func TestClassifierBound(t *testing.T) {
	for _, max := range []int{1, 2, 3, 10, 101} {
		c := NewClassifier(max)
		for i := 0; i < 5*max+7; i++ {
			if _, err := c.Classify(fmt.Sprintf("SELECT %d", i)); err != nil {
				t.Fatal(err)
			}
			// A recent text stays cached while others come and go.
			if _, err := c.Classify("SELECT 'hot'"); err != nil {
				t.Fatal(err)
			}
			limit := max
			if limit < 2 {
				limit = 2
			}
			if n := c.Len(); n > limit {
				t.Fatalf("max %d: Len = %d after %d texts", max, n, i+1)
			}
		}
	}
}

func TestClassifierSkips(t *testing.T) {
	c := NewClassifier(8)
	long := "SELECT 1" + strings.Repeat(" ", MaxCachedText)
	if _, err := c.Classify(long); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Classify("SELEC 1"); err == nil {
		t.Fatal("no error for bad SQL")
	}
	if _, err := c.Classify("SELECT '\xff'"); !errors.As(err, new(*ParseError)) {
		t.Fatalf("err = %v, want a ParseError", err)
	}
	if n := c.Len(); n != 0 {
		t.Errorf("Len = %d: long texts and errors must not be cached", n)
	}
	off := NewClassifier(0)
	if cmds, err := off.Classify("SELECT 1"); err != nil || len(cmds) != 1 || off.Len() != 0 {
		t.Errorf("disabled cache: %v, %v, Len %d", cmds, err, off.Len())
	}
}

// A wire reader may hand the classifier a string over a buffer it reuses:
// what the cache keeps must not change with that buffer.
func TestClassifierCopiesTheText(t *testing.T) {
	c := NewClassifier(8)
	buf := []byte("SELECT * FROM users")
	sql := unsafe.String(&buf[0], len(buf))
	cmds, err := c.Classify(sql)
	if err != nil {
		t.Fatal(err)
	}
	copy(buf, "DELETE FROM  orders")
	if cmds[0].Text != "SELECT * FROM users" {
		t.Errorf("cached Text changed with the caller's buffer: %q", cmds[0].Text)
	}
	again, err := c.Classify("SELECT * FROM users")
	if err != nil || again[0].Verb != "SELECT" {
		t.Errorf("cache key changed with the caller's buffer: %+v, %v", again, err)
	}
}

func TestClassifierConcurrent(t *testing.T) {
	c := NewClassifier(32)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				sql := fmt.Sprintf("SELECT * FROM t%d WHERE id = %d", i%50, g)
				cmds, err := c.Classify(sql)
				if err != nil || len(cmds) != 1 || cmds[0].Reads[0] != fmt.Sprintf("t%d", i%50) {
					t.Errorf("Classify(%q) = %+v, %v", sql, cmds, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
