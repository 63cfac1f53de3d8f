package envoyadmin

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// serverStates are admin.v3.ServerInfo.State by number, for output that prints enums as numbers.
var serverStates = []string{"LIVE", "DRAINING", "PRE_INITIALIZING", "INITIALIZING"}

// ParseServerInfo parses GET /server_info: the Envoy build string, the server state, the
// uptime of the current epoch ("188s"), the worker concurrency from the command line options,
// and the node's id and ISTIO_VERSION metadata when the response has a node (Envoy 1.17 and
// later). Field names may be snake_case or camelCase; node metadata keys are matched as written.
// A document without "version" and "state" is an error, since it is not /server_info output.
func ParseServerInfo(data []byte) (*ServerInfo, error) {
	top, err := looseObject(data)
	if err != nil {
		return nil, fmt.Errorf("/server_info: %w", err)
	}
	_, hasVersion := top["version"]
	_, hasState := top["state"]
	if !hasVersion && !hasState {
		return nil, errors.New("/server_info: no version or state field; is this /server_info output?")
	}
	info := &ServerInfo{
		Version: looseString(top["version"]),
		State:   strings.ToUpper(looseString(top["state"])),
	}
	if n, err := strconv.Atoi(info.State); err == nil && n >= 0 && n < len(serverStates) {
		info.State = serverStates[n]
	}
	if s := looseString(top["uptimecurrentepoch"]); s != "" {
		d, err := parseSecondsDuration(s)
		if err != nil {
			return nil, fmt.Errorf("/server_info uptime_current_epoch: %w", err)
		}
		info.Uptime = d
	}
	if raw, ok := top["commandlineoptions"]; ok {
		if opts, err := looseObject(raw); err == nil {
			if c, err := strconv.Atoi(looseString(opts["concurrency"])); err == nil {
				info.Concurrency = c
			}
		}
	}
	if raw, ok := top["node"]; ok {
		if node, err := looseObject(raw); err == nil {
			info.NodeID = looseString(node["id"])
			var meta map[string]json.RawMessage
			if json.Unmarshal(node["metadata"], &meta) == nil {
				info.IstioVersion = looseString(meta["ISTIO_VERSION"])
			}
		}
	}
	return info, nil
}

// parseSecondsDuration reads a protobuf Duration in JSON ("188s", "1.5s"), or a Go duration.
func parseSecondsDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if secs, ok := strings.CutSuffix(s, "s"); ok {
		if f, err := strconv.ParseFloat(secs, 64); err == nil {
			if math.IsNaN(f) || math.Abs(f) > math.MaxInt64/float64(time.Second) {
				return 0, fmt.Errorf("duration %q out of range", s)
			}
			return time.Duration(f * float64(time.Second)), nil
		}
	}
	return time.ParseDuration(s)
}
