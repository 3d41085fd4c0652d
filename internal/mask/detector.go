package mask

import (
	"strconv"
	"strings"
)

// Detector identifies a content detector.
type Detector uint8

// The detectors. Their names (String) are what Config.Detectors takes.
const (
	Email            Detector = iota // "email"
	Phone                            // "phone": E.164 (+…) and NANP / trunk-prefix national formats
	CreditCard                       // "credit_card": Luhn, IIN range and length
	IBAN                             // "iban": country length table and mod-97
	AzureStorageKey                  // "azure_storage_key": 88-char base64 of 64 bytes
	ConnectionString                 // "connection_string": secret values in key=value and URL credentials
	SASToken                         // "sas_token": sig= with sv= or se= in the same query
	JWT                              // "jwt": three (or five) base64url parts, header JSON with "alg"
	PrivateKey                       // "private_key": PEM -----BEGIN … PRIVATE KEY----- blocks
	GitHubToken                      // "github_token": ghp_/gho_/ghu_/ghs_/ghr_ + 36, github_pat_ + 22_59
	AWSAccessKey                     // "aws_access_key": AKIA/ASIA + 16 upper-case alphanumerics
	OpenAIKey                        // "openai_key": sk-… / sk-proj-…
	WeirToken                        // "weir_token": a JWT with alg EdDSA, a kid and aud "weir"

	numDetectors
)

// ColumnRule is the Counts slot for values masked by a column rule
// (MaskValue). It is not a detector and cannot be configured.
const ColumnRule = numDetectors

const numSlots = numDetectors + 1

var detectorNames = [numSlots]string{
	Email:            "email",
	Phone:            "phone",
	CreditCard:       "credit_card",
	IBAN:             "iban",
	AzureStorageKey:  "azure_storage_key",
	ConnectionString: "connection_string",
	SASToken:         "sas_token",
	JWT:              "jwt",
	PrivateKey:       "private_key",
	GitHubToken:      "github_token",
	AWSAccessKey:     "aws_access_key",
	OpenAIKey:        "openai_key",
	WeirToken:        "weir_token",
	ColumnRule:       "column",
}

// String returns the detector's configuration name ("column" for
// ColumnRule).
func (d Detector) String() string {
	if int(d) < len(detectorNames) {
		return detectorNames[d]
	}
	return "detector(" + strconv.Itoa(int(d)) + ")"
}

// DetectorNames returns the names of all detectors, in a fixed order.
func DetectorNames() []string {
	out := make([]string, numDetectors)
	copy(out, detectorNames[:numDetectors])
	return out
}

// ParseDetector returns the detector with the given name.
func ParseDetector(name string) (Detector, bool) {
	for d := Detector(0); d < numDetectors; d++ {
		if detectorNames[d] == name {
			return d, true
		}
	}
	return 0, false
}

// detSet is a set of detectors.
type detSet uint16

func (s detSet) has(d Detector) bool { return s&(1<<d) != 0 }

const allDetectors detSet = 1<<numDetectors - 1

// Counts counts masked values per detector; index it with a Detector or
// ColumnRule. It is a plain array: the zero value is empty, copying and
// returning it never allocates.
type Counts [numSlots]int

// Add adds o to c.
func (c *Counts) Add(o Counts) {
	for i := range c {
		c[i] += o[i]
	}
}

// Total is the number of masked values over all slots.
func (c Counts) Total() int {
	t := 0
	for _, n := range c {
		t += n
	}
	return t
}

// IsZero reports whether nothing was counted.
func (c Counts) IsZero() bool { return c == Counts{} }

// Get returns the count for a detector or slot name ("email", "column"…).
func (c Counts) Get(name string) int {
	for i, n := range detectorNames {
		if n == name {
			return c[i]
		}
	}
	return 0
}

// Map returns the non-zero counts by name (nil when empty), for audit
// records.
func (c Counts) Map() map[string]int {
	var m map[string]int
	for i, n := range c {
		if n != 0 {
			if m == nil {
				m = make(map[string]int)
			}
			m[detectorNames[i]] = n
		}
	}
	return m
}

// String formats the non-zero counts as "email=2 phone=1".
func (c Counts) String() string {
	var sb strings.Builder
	for i, n := range c {
		if n != 0 {
			if sb.Len() > 0 {
				sb.WriteByte(' ')
			}
			sb.WriteString(detectorNames[i])
			sb.WriteByte('=')
			sb.WriteString(strconv.Itoa(n))
		}
	}
	return sb.String()
}
