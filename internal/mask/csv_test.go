package mask

import "testing"

// Values in CSV and other comma-separated text (a blob, a COPY, a log
// line) are found whatever the column before them holds; numbers grouped
// by commas stay what they are.
func TestCommaSeparatedFields(t *testing.T) {
	m := newMasker(t, FormatPartial, DetectorNames()...)
	for _, tc := range []struct{ in, want string }{
		{"1,Tomasz Silva,t@example.org,+44 20 7946 0785,DE89370400440532013000,2223002068173437",
			"1,Tomasz Silva,t****@e*****.org,+** ** **** **85,DE****************3000,**** **** **** 3437"},
		{"order,1999,4242424242424242\n", "order,1999,**** **** **** 4242\n"},
		{"2,Emma,+33 1 99 00 61 66,6011 1143 7169 3600", "2,Emma,+** * ** ** ** 66,**** **** **** 3600"},
		{"total: 1,234,567,890", "total: 1,234,567,890"},
		{"ids 4,242,424,242,424,242", "ids 4,242,424,242,424,242"},
		{"7,+44 20 7946 0785", "7,+** ** **** **85"},
	} {
		if got, _ := m.MaskString(tc.in); got != tc.want {
			t.Errorf("%q\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}
