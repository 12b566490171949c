package awssim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// CloudWatch Logs over JSON 1.1: GetLogEvents and FilterLogEvents over the
// output of this simulator's containers labelled with LabelLogGroup and
// LabelLogStream (read through the Docker API with its timestamps; what was
// read is kept after the container is gone), and over lines that a test
// planted with PutLogEvents. A log group exists while it has a stream.

const logsTarget = "Logs_20140328"

type logStore struct {
	mu         sync.Mutex
	planted    map[string]map[string][]logLine // group → stream → lines
	containers map[string]*containerLog        // container ID → what was read
	groups     map[string]*logGroupInfo        // created with CreateLogGroup (logs_write.go)
}

type logLine struct {
	ts  time.Time
	msg string
}

type containerLog struct {
	group, stream string
	lines         []logLine
}

// logEvent is one event of a group, with what orders it: its time, then
// its stream, its source (planted, or a container), and its place there.
type logEvent struct {
	logLine
	stream, source string
	idx            int
}

func (s *Sim) registerLogs() {
	s.logs = &logStore{planted: map[string]map[string][]logLine{}, containers: map[string]*containerLog{}}
	s.RegisterJSON(logsTarget, JSONService{Name: "Logs", Handler: s.serveLogs})
}

// PutLogEvents plants lines in a log stream, stamped now, creating the group
// and the stream as needed.
func (s *Sim) PutLogEvents(group, stream string, lines ...string) {
	now := time.Now()
	s.logs.mu.Lock()
	defer s.logs.mu.Unlock()
	if s.logs.planted[group] == nil {
		s.logs.planted[group] = map[string][]logLine{}
	}
	for _, l := range lines {
		s.logs.planted[group][stream] = append(s.logs.planted[group][stream], logLine{ts: now, msg: l})
	}
}

// readContainerLogs reads one container's output into the store, so that it
// outlives the container; ECS calls it before removing a task's container.
func (s *Sim) readContainerLogs(ctx context.Context, id, group, stream string) error {
	api := s.dockerAPI()
	if api == nil {
		return nil
	}
	info, err := api.ContainerInspect(ctx, id)
	if err != nil {
		return err
	}
	if group == "" {
		group, stream = info.Config.Labels[LabelLogGroup], info.Config.Labels[LabelLogStream]
	}
	rc, err := api.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true})
	if err != nil {
		return err
	}
	defer rc.Close()
	var buf bytes.Buffer
	if info.Config != nil && info.Config.Tty {
		_, err = io.Copy(&buf, rc)
	} else {
		_, err = stdcopy.StdCopy(&buf, &buf, rc) // one writer keeps the streams' order
	}
	if err != nil {
		return err
	}
	var lines []logLine
	sc := bufio.NewScanner(&buf)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		stamp, msg, _ := strings.Cut(sc.Text(), " ")
		ts, err := time.Parse(time.RFC3339Nano, stamp)
		if err != nil {
			continue
		}
		lines = append(lines, logLine{ts: ts, msg: strings.TrimSuffix(msg, "\r")})
	}
	s.logs.mu.Lock()
	defer s.logs.mu.Unlock()
	s.logs.containers[id] = &containerLog{group: group, stream: stream, lines: lines}
	return nil
}

// refreshContainerLogs rereads the group's containers.
func (s *Sim) refreshContainerLogs(ctx context.Context, group string) {
	list, err := s.simContainers(ctx, LabelLogGroup+"="+group)
	if err != nil {
		return
	}
	for _, c := range list {
		_ = s.readContainerLogs(ctx, c.ID, group, c.Labels[LabelLogStream])
	}
}

// groupEvents is every event of a log group by stream, in order, and
// whether the group exists.
func (s *Sim) groupEvents(ctx context.Context, group string) (map[string][]logEvent, bool) {
	s.refreshContainerLogs(ctx, group)
	s.logs.mu.Lock()
	defer s.logs.mu.Unlock()
	streams := map[string][]logEvent{}
	_, found := s.logs.groups[group]
	for stream, lines := range s.logs.planted[group] {
		found = true
		for i, l := range lines {
			streams[stream] = append(streams[stream], logEvent{logLine: l, stream: stream, idx: i})
		}
	}
	for id, c := range s.logs.containers {
		if c.group != group {
			continue
		}
		found = true
		if _, ok := streams[c.stream]; !ok {
			streams[c.stream] = []logEvent{}
		}
		for i, l := range c.lines {
			streams[c.stream] = append(streams[c.stream], logEvent{logLine: l, stream: c.stream, source: id, idx: i})
		}
	}
	for _, evs := range streams {
		sortEvents(evs)
	}
	return streams, found
}

func sortEvents(evs []logEvent) {
	sort.SliceStable(evs, func(i, j int) bool {
		a, b := evs[i], evs[j]
		switch {
		case !a.ts.Equal(b.ts):
			return a.ts.Before(b.ts)
		case a.stream != b.stream:
			return a.stream < b.stream
		case a.source != b.source:
			return a.source < b.source
		}
		return a.idx < b.idx
	})
}

type logsRequest struct {
	LogGroupName        string   `json:"logGroupName"`
	LogGroupIdentifier  string   `json:"logGroupIdentifier"`
	LogStreamName       string   `json:"logStreamName"`
	LogStreamNames      []string `json:"logStreamNames"`
	LogStreamNamePrefix string   `json:"logStreamNamePrefix"`
	StartTime           *int64   `json:"startTime"`
	EndTime             *int64   `json:"endTime"`
	FilterPattern       string   `json:"filterPattern"`
	NextToken           string   `json:"nextToken"`
	Limit               int      `json:"limit"`
	StartFromHead       *bool    `json:"startFromHead"`
}

type outputLogEvent struct {
	Timestamp     int64  `json:"timestamp"`
	Message       string `json:"message"`
	IngestionTime int64  `json:"ingestionTime"`
}

type filteredLogEvent struct {
	LogStreamName string `json:"logStreamName"`
	Timestamp     int64  `json:"timestamp"`
	Message       string `json:"message"`
	IngestionTime int64  `json:"ingestionTime"`
	EventID       string `json:"eventId"`
}

func (s *Sim) serveLogs(r *http.Request, op string, body []byte) (any, error) {
	if _, err := s.signedCaller(r); err != nil {
		return nil, err
	}
	switch op {
	case "CreateLogGroup", "PutRetentionPolicy", "CreateLogStream", "PutLogEvents", "DescribeLogGroups":
		var in logsWriteRequest
		if err := strictDecode(body, &in); err != nil {
			return nil, err
		}
		return s.logsWrite(op, in)
	}
	var in logsRequest
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, Errorf("SerializationException", "%v", err)
	}
	group := in.LogGroupName
	switch {
	case group != "" && in.LogGroupIdentifier != "":
		return nil, Errorf("InvalidParameterException", "LogGroup name and LogGroup ARN are mutually exclusive parameters.")
	case group == "":
		group = in.LogGroupIdentifier
		if i := strings.Index(group, ":log-group:"); i >= 0 {
			group = strings.TrimSuffix(group[i+len(":log-group:"):], ":*")
		}
	}
	switch op {
	case "GetLogEvents":
		return s.getLogEvents(r.Context(), group, in)
	case "FilterLogEvents":
		return s.filterLogEvents(r.Context(), group, in)
	}
	return nil, UnknownOperation(op)
}

func groupNotFound() *Error {
	return Errorf("ResourceNotFoundException", "The specified log group does not exist.")
}

func inTimeWindow(ts time.Time, start, end *int64, endInclusive bool) bool {
	ms := ts.UnixMilli()
	if start != nil && ms < *start {
		return false
	}
	if end != nil && (ms > *end || (!endInclusive && ms == *end)) {
		return false
	}
	return true
}

func (s *Sim) getLogEvents(ctx context.Context, group string, in logsRequest) (any, error) {
	streams, ok := s.groupEvents(ctx, group)
	if !ok {
		return nil, groupNotFound()
	}
	all, ok := streams[in.LogStreamName]
	if !ok {
		return nil, Errorf("ResourceNotFoundException", "The specified log stream does not exist.")
	}
	var evs []logEvent
	for _, e := range all {
		if inTimeWindow(e.ts, in.StartTime, in.EndTime, false) {
			evs = append(evs, e)
		}
	}
	limit := in.Limit
	if limit <= 0 || limit > 10000 {
		limit = 10000
	}
	// Tokens are positions: f/N reads forward from N, b/N backward to N.
	lo, hi := 0, 0
	switch {
	case in.NextToken != "":
		dir, pos, err := parseLogToken(in.NextToken, len(evs))
		if err != nil {
			return nil, err
		}
		if dir == 'f' {
			lo, hi = pos, min(pos+limit, len(evs))
		} else {
			lo, hi = max(pos-limit, 0), pos
		}
	case in.StartFromHead != nil && *in.StartFromHead:
		lo, hi = 0, min(limit, len(evs))
	default:
		lo, hi = max(len(evs)-limit, 0), len(evs)
	}
	out := make([]outputLogEvent, 0, hi-lo)
	for _, e := range evs[lo:hi] {
		out = append(out, outputLogEvent{Timestamp: e.ts.UnixMilli(), Message: e.msg, IngestionTime: e.ts.UnixMilli()})
	}
	return map[string]any{
		"events":            out,
		"nextForwardToken":  fmt.Sprintf("f/%020d", hi),
		"nextBackwardToken": fmt.Sprintf("b/%020d", lo),
	}, nil
}

func parseLogToken(tok string, n int) (byte, int, error) {
	bad := Errorf("InvalidParameterException", "The specified nextToken is invalid.")
	if len(tok) < 3 || (tok[0] != 'f' && tok[0] != 'b') || tok[1] != '/' {
		return 0, 0, bad
	}
	pos, err := strconv.Atoi(tok[2:])
	if err != nil || pos < 0 {
		return 0, 0, bad
	}
	return tok[0], min(pos, n), nil
}

func (s *Sim) filterLogEvents(ctx context.Context, group string, in logsRequest) (any, error) {
	if len(in.LogStreamNames) > 0 && in.LogStreamNamePrefix != "" {
		return nil, Errorf("InvalidParameterException", "logStreamNames and logStreamNamePrefix are mutually exclusive parameters.")
	}
	match, err := compileFilterPattern(in.FilterPattern)
	if err != nil {
		return nil, err
	}
	streams, ok := s.groupEvents(ctx, group)
	if !ok {
		return nil, groupNotFound()
	}
	var names []string
	if len(in.LogStreamNames) > 0 {
		for _, n := range in.LogStreamNames {
			if _, ok := streams[n]; ok {
				names = append(names, n)
			}
		}
	} else {
		for n := range streams {
			if strings.HasPrefix(n, in.LogStreamNamePrefix) {
				names = append(names, n)
			}
		}
	}
	sort.Strings(names)
	var evs []logEvent
	for _, n := range names {
		for _, e := range streams[n] {
			if inTimeWindow(e.ts, in.StartTime, in.EndTime, true) && match(e.msg) {
				evs = append(evs, e)
			}
		}
	}
	sortEvents(evs)

	offset := 0
	if in.NextToken != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(in.NextToken, "awssim/"))
		if err != nil || !strings.HasPrefix(in.NextToken, "awssim/") || n > len(evs) {
			return nil, Errorf("InvalidParameterException", "The specified nextToken is invalid.")
		}
		offset = n
	}
	limit := in.Limit
	if limit <= 0 || limit > 10000 {
		limit = 10000
	}
	end := min(offset+limit, len(evs))
	out := make([]filteredLogEvent, 0, end-offset)
	for _, e := range evs[offset:end] {
		out = append(out, filteredLogEvent{
			LogStreamName: e.stream, Timestamp: e.ts.UnixMilli(), Message: e.msg, IngestionTime: e.ts.UnixMilli(),
			EventID: fmt.Sprintf("%d%s%06d", e.ts.UnixMilli(), fnv32(e.stream+"/"+e.source), e.idx),
		})
	}
	searched := make([]map[string]any, 0, len(names))
	for _, n := range names {
		searched = append(searched, map[string]any{"logStreamName": n, "searchedCompletely": true})
	}
	resp := map[string]any{"events": out, "searchedLogStreams": searched}
	if end < len(evs) {
		resp["nextToken"] = "awssim/" + strconv.Itoa(end)
	}
	return resp, nil
}

func fnv32(s string) string {
	var h uint32 = 2166136261
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return fmt.Sprintf("%010d", h)
}

// compileFilterPattern supports CloudWatch's term patterns: every term must
// appear (case-sensitive), "quoted phrases" count as one term, -term must not
// appear, and ?a ?b means any of them. JSON and space-delimited patterns
// ({…} and […]) are not supported.
func compileFilterPattern(p string) (func(string) bool, error) {
	p = strings.TrimSpace(p)
	if p == "" || p == `""` {
		return func(string) bool { return true }, nil
	}
	if strings.HasPrefix(p, "{") || strings.HasPrefix(p, "[") {
		return nil, Errorf("InvalidParameterException", "awssim supports term filter patterns only, not %q", p)
	}
	words, err := shellWords(p)
	if err != nil {
		return nil, Errorf("InvalidParameterException", "Invalid filter pattern: %v", err)
	}
	var all, none, anyOf []string
	for _, w := range words {
		switch {
		case strings.HasPrefix(w, "-") && len(w) > 1:
			none = append(none, w[1:])
		case strings.HasPrefix(w, "?") && len(w) > 1:
			anyOf = append(anyOf, w[1:])
		default:
			all = append(all, w)
		}
	}
	return func(msg string) bool {
		for _, t := range all {
			if !strings.Contains(msg, t) {
				return false
			}
		}
		for _, t := range none {
			if strings.Contains(msg, t) {
				return false
			}
		}
		if len(anyOf) == 0 {
			return true
		}
		for _, t := range anyOf {
			if strings.Contains(msg, t) {
				return true
			}
		}
		return false
	}, nil
}
