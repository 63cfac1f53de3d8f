package envoyadmin

import (
	"reflect"
	"testing"
)

func TestParseResetError(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		want   ResetError
		wantOK bool
	}{
		{
			name:   "connection termination",
			in:     "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
			want:   ResetError{Reason: "connection termination"},
			wantOK: true,
		},
		{
			name:   "retried, refused with transport failure",
			in:     "upstream connect error or disconnect/reset before headers. retried and the latest reset reason: remote connection failure, transport failure reason: delayed connect error: 111",
			want:   ResetError{Retried: true, Reason: "remote connection failure", TransportFailure: "delayed connect error: 111"},
			wantOK: true,
		},
		{
			name:   "old Envoy connection failure",
			in:     "upstream connect error or disconnect/reset before headers. reset reason: connection failure, transport failure reason: delayed connect error: 113",
			want:   ResetError{Reason: "connection failure", TransportFailure: "delayed connect error: 113"},
			wantOK: true,
		},
		{
			name:   "TLS error quoted in curl output",
			in:     `< HTTP/1.1 503 Service Unavailable` + "\n" + `"upstream connect error or disconnect/reset before headers. reset reason: connection failure, transport failure reason: TLS error: 268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED"` + "\n* Connection #0 left intact",
			want:   ResetError{Reason: "connection failure", TransportFailure: "TLS error: 268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED"},
			wantOK: true,
		},
		{
			name:   "escaped inside a JSON application log",
			in:     `{"level":"error","msg":"call failed: status 503 body \"upstream connect error or disconnect/reset before headers. reset reason: overflow\"","ts":1}`,
			want:   ResetError{Reason: "overflow"},
			wantOK: true,
		},
		{
			name:   "local refused stream reset is not local reset",
			in:     "upstream connect error or disconnect/reset before headers. reset reason: local refused stream reset",
			want:   ResetError{Reason: "local refused stream reset"},
			wantOK: true,
		},
		{
			name:   "sentence full stop after the transport failure",
			in:     "we got: upstream connect error or disconnect/reset before headers. reset reason: connection timeout, transport failure reason: delayed connect error: 110.",
			want:   ResetError{Reason: "connection timeout", TransportFailure: "delayed connect error: 110"},
			wantOK: true,
		},
		{
			name:   "capitalised paste",
			in:     "Upstream connect error or disconnect/reset before headers. Reset reason: overload manager reset",
			want:   ResetError{Reason: "overload manager reset"},
			wantOK: true,
		},
		{
			name:   "unknown future reason",
			in:     "upstream connect error or disconnect/reset before headers. reset reason: http1 premature upstream half close, transport failure reason: x",
			want:   ResetError{Reason: "http1 premature upstream half close", TransportFailure: "x"},
			wantOK: true,
		},
		{
			name:   "old Envoy without reason",
			in:     "upstream connect error or disconnect/reset before headers",
			want:   ResetError{},
			wantOK: true,
		},
		{name: "no healthy upstream is another error", in: "no healthy upstream"},
		{name: "empty", in: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseResetError(tt.in)
			if ok != tt.wantOK || got != tt.want {
				t.Errorf("ParseResetError() = %+v, %v; want %+v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestParseResponseFlags(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"-", nil},
		{"", nil},
		{"UC", []string{"UC"}},
		{"UF,URX", []string{"UF", "URX"}},
		{"NoHealthyUpstream", []string{"UH"}},
		{"UpstreamConnectionFailure,UpstreamRetryLimitExceeded", []string{"UF", "URX"}},
		{"UO,UO", []string{"UO"}},
		{"ZZZ", []string{"ZZZ"}}, // a flag newer than this list is kept
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := ParseResponseFlags(tt.in); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseResponseFlags(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestResponseFlagsKnown(t *testing.T) {
	for _, f := range []string{"UH", "UF", "UO", "URX", "UT", "UC", "UR", "LR", "DC", "NR", "NC", "UPE", "SI", "RL",
		"UMSDR", "DT", "UAEX", "RLSE", "IH", "DPE", "FI", "DI", "LH", "OM", "DF", "DO", "UDO", "DR", "NFCF", "RFCF"} {
		if !IsKnownResponseFlag(f) {
			t.Errorf("IsKnownResponseFlag(%q) = false", f)
		}
	}
	for _, f := range []string{"", "-", "uf", "ZZZ", "NoHealthyUpstream"} {
		if IsKnownResponseFlag(f) {
			t.Errorf("IsKnownResponseFlag(%q) = true", f)
		}
	}
}

func TestResetReasonFromResponseCodeDetails(t *testing.T) {
	tests := []struct {
		in                      string
		base, reason, transport string
	}{
		{"via_upstream", "via_upstream", "", ""},
		{"upstream_reset_before_response_started{connection_termination}", "upstream_reset_before_response_started", "connection termination", ""},
		{"upstream_reset_after_response_started{remote_reset}", "upstream_reset_after_response_started", "remote reset", ""},
		{"upstream_reset_before_response_started{connection_failure,delayed_connect_error:_111}", "upstream_reset_before_response_started", "connection failure", "delayed_connect_error:_111"},
		{"upstream_reset_before_response_started{connection_failure,TLS_error:_268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED}", "upstream_reset_before_response_started", "connection failure", "TLS_error:_268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED"},
		{"upstream_reset_before_response_started{local_refused_stream_reset}", "upstream_reset_before_response_started", "local refused stream reset", ""},
		{"broken{unterminated", "broken", "unterminated", ""},
		{"", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			b, r, tr := ParseResponseCodeDetails(tt.in)
			if b != tt.base || r != tt.reason || tr != tt.transport {
				t.Errorf("ParseResponseCodeDetails(%q) = %q, %q, %q; want %q, %q, %q", tt.in, b, r, tr, tt.base, tt.reason, tt.transport)
			}
		})
	}
}
