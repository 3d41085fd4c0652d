package azure

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"unicode/utf8"
)

const maxJSONDepth = 64

// CheckJSON refuses a body that two JSON parsers could read differently
// (H13): duplicate keys, keys differing only in case (ARM matches property
// names case-insensitively, Go's decoder takes the last, others the first),
// invalid UTF-8 (Go replaces it silently), trailing data, excessive depth.
func CheckJSON(body []byte) error {
	if !utf8.Valid(body) {
		return refuse("InvalidJSON", "the request body is not valid UTF-8")
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := checkValue(d, 0); err != nil {
		var r *Refusal
		if errors.As(err, &r) {
			return r
		}
		return refuse("InvalidJSON", "the request body is not valid JSON")
	}
	if _, err := d.Token(); err != io.EOF {
		return refuse("InvalidJSON", "the request body has data after its JSON value")
	}
	return nil
}

func checkValue(d *json.Decoder, depth int) error {
	if depth > maxJSONDepth {
		return refuse("InvalidJSON", "the request body nests deeper than %d levels", maxJSONDepth)
	}
	tok, err := d.Token()
	if err != nil {
		return err
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch delim {
	case '{':
		seen := map[string]string{}
		for d.More() {
			kt, err := d.Token()
			if err != nil {
				return err
			}
			k, ok := kt.(string)
			if !ok {
				return errors.New("object key is not a string")
			}
			lk := strings.ToLower(k)
			if prev, dup := seen[lk]; dup {
				if prev == k {
					return refuse("DuplicateJSONKey", "the request body repeats the key %q; send each key once", k)
				}
				return refuse("DuplicateJSONKey", "the request body has the keys %q and %q, which differ only in case; send one", prev, k)
			}
			seen[lk] = k
			if err := checkValue(d, depth+1); err != nil {
				return err
			}
		}
		_, err := d.Token()
		return err
	case '[':
		for d.More() {
			if err := checkValue(d, depth+1); err != nil {
				return err
			}
		}
		_, err := d.Token()
		return err
	}
	return errors.New("unexpected delimiter")
}
