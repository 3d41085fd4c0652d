package azure

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"

	"github.com/weir-gw/weir/internal/mask"
)

// secretNames are JSON members whose string value is a secret wherever
// they appear: Key Vault's secret bundle and backups ("value"), storage
// listKeys ("keys":[{"value"}]), deployment outputs, connection strings.
var secretNames = map[string]bool{
	"value": true, "key": true, "key1": true, "key2": true, "primarykey": true, "secondarykey": true,
	"connectionstring": true, "primaryconnectionstring": true, "secondaryconnectionstring": true,
	"accountkey": true, "password": true, "secret": true, "clientsecret": true, "accesskey": true,
	"sastoken": true, "accountsastoken": true, "servicesastoken": true, "token": true, "accesstoken": true,
	"sharedaccesskey": true, "publishingpassword": true, "userpassword": true, "adminpassword": true,
}

func secretName(k string) bool {
	k = strings.ToLower(k)
	if secretNames[k] {
		return true
	}
	for _, s := range []string{"password", "secret", "connectionstring", "sastoken", "accesskey", "masterkey", "primarykey", "secondarykey"} {
		if strings.HasSuffix(k, s) {
			return true
		}
	}
	return false
}

// ErrForeignLink refuses a response whose nextLink leaves the target.
var ErrForeignLink = errors.New("a nextLink in the response points to another host")

// jsonMasker rewrites a JSON response value by value, keeping member
// order: strings under a secret name are masked whole (column rule), every
// other string is scanned by the content detectors, and nextLinks are
// checked (and rewritten) by link.
type jsonMasker struct {
	m *mask.Masker
	// allSecret masks every string (config/appsettings/list and the like,
	// whose members are the application's own secret names).
	allSecret bool
	// reveal leaves secret-named values as they are: the request was
	// approved to reveal them (risk reveal_secret). Other strings are
	// still scanned.
	reveal bool
	link   func(string) (string, bool)
	// scrub removes weir's own upstream credential, which JSON escaping
	// could hide from a scan of the raw bytes (nil: nothing to remove).
	scrub  func(string) string
	counts mask.Counts
	out    bytes.Buffer
}

func (j *jsonMasker) str(s string, secret bool) {
	if j.scrub != nil {
		s = j.scrub(s)
	}
	switch {
	case secret && j.reveal:
	case secret && j.m != nil:
		var c mask.Counts
		s, c = j.m.MaskValue(s)
		j.counts.Add(c)
	case secret:
		s = "[REDACTED]"
	case j.m != nil:
		var c mask.Counts
		s, c = j.m.MaskString(s)
		j.counts.Add(c)
	}
	b, _ := json.Marshal(s)
	j.out.Write(b)
}

// value masks one JSON value. leaf marks a value under a secret name: its
// strings (or an array of strings) are masked whole; an object under it
// is read member by member again, so ARM's {"value":[…resources…]} list
// wrapper does not make whole resources secret. tree masks everything
// below (config/appsettings/list's properties).
func (j *jsonMasker) value(d *json.Decoder, leaf, tree bool, depth int) error {
	secret := leaf || tree
	if depth > 256 {
		return errors.New("response JSON nests too deep")
	}
	tok, err := d.Token()
	if err != nil {
		return err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			j.out.WriteByte('{')
			first := true
			for d.More() {
				kt, err := d.Token()
				if err != nil {
					return err
				}
				k, _ := kt.(string)
				if !first {
					j.out.WriteByte(',')
				}
				first = false
				// Keys are text too: a map keyed by customer e-mail
				// serializes its keys as object members.
				shown := k
				if j.scrub != nil {
					shown = j.scrub(shown)
				}
				if j.m != nil {
					var c mask.Counts
					shown, c = j.m.MaskString(shown)
					j.counts.Add(c)
				}
				kb, _ := json.Marshal(shown)
				j.out.Write(kb)
				j.out.WriteByte(':')
				lk := strings.ToLower(k)
				if lk == "nextlink" || lk == "@odata.nextlink" {
					if err := j.nextLink(d); err != nil {
						return err
					}
					continue
				}
				if err := j.value(d, secretName(k), tree || (j.allSecret && lk == "properties"), depth+1); err != nil {
					return err
				}
			}
			if _, err := d.Token(); err != nil {
				return err
			}
			j.out.WriteByte('}')
		case '[':
			j.out.WriteByte('[')
			first := true
			for d.More() {
				if !first {
					j.out.WriteByte(',')
				}
				first = false
				if err := j.value(d, leaf, tree, depth+1); err != nil {
					return err
				}
			}
			if _, err := d.Token(); err != nil {
				return err
			}
			j.out.WriteByte(']')
		}
	case string:
		j.str(t, secret)
	case json.Number:
		// A card or account number sent as a JSON number is still one:
		// scanned, and when masked it becomes the masked string; under a
		// secret name ("password": 123456) it is masked whole.
		if secret && !j.reveal {
			j.str(t.String(), true)
			break
		}
		if j.m != nil {
			if ms, c := j.m.MaskString(t.String()); ms != t.String() {
				j.counts.Add(c)
				b, _ := json.Marshal(ms)
				j.out.Write(b)
				break
			}
		}
		j.out.WriteString(t.String())
	case bool:
		if t {
			j.out.WriteString("true")
		} else {
			j.out.WriteString("false")
		}
	case nil:
		j.out.WriteString("null")
	}
	return nil
}

func (j *jsonMasker) nextLink(d *json.Decoder) error {
	tok, err := d.Token()
	if err != nil {
		return err
	}
	switch t := tok.(type) {
	case nil:
		j.out.WriteString("null")
		return nil
	case string:
		if t == "" {
			j.out.WriteString(`""`)
			return nil
		}
		u, ok := j.link(t)
		if !ok {
			return ErrForeignLink
		}
		b, _ := json.Marshal(u)
		j.out.Write(b)
		return nil
	}
	return errors.New("nextLink is not a string")
}

// MaskJSON masks a JSON response body. A body that is not one JSON value
// is an error (the caller then refuses the response).
func MaskJSON(m *mask.Masker, body []byte, allSecret bool, link func(string) (string, bool)) ([]byte, mask.Counts, error) {
	return maskJSON(&jsonMasker{m: m, allSecret: allSecret, link: link}, body)
}

func maskJSON(j *jsonMasker, body []byte) ([]byte, mask.Counts, error) {
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := j.value(d, false, false, 0); err != nil {
		return nil, j.counts, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, j.counts, errors.New("data after the JSON value")
	}
	return j.out.Bytes(), j.counts, nil
}
