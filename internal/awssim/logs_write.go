package awssim

import (
	"maps"
	"slices"
	"time"
)

// CloudWatch Logs writes, as vmctl's audit trail makes them: CreateLogGroup,
// PutRetentionPolicy, CreateLogStream, PutLogEvents, and DescribeLogGroups to read
// a group's retention back. Written events join the planted lines, so
// GetLogEvents and FilterLogEvents return them.

type logGroupInfo struct {
	created   time.Time
	retention int // days; 0: never expire
}

type logsWriteRequest struct {
	LogGroupName       string `json:"logGroupName"`
	LogGroupNamePrefix string `json:"logGroupNamePrefix"`
	LogStreamName      string `json:"logStreamName"`
	RetentionInDays    *int   `json:"retentionInDays"`
	LogEvents          []struct {
		Timestamp int64  `json:"timestamp"`
		Message   string `json:"message"`
	} `json:"logEvents"`
}

// logGroupExists: created, or holding planted lines or container output; the
// caller holds s.logs.mu.
func (s *Sim) logGroupExistsLocked(group string) bool {
	if _, ok := s.logs.groups[group]; ok {
		return true
	}
	if _, ok := s.logs.planted[group]; ok {
		return true
	}
	for _, c := range s.logs.containers {
		if c.group == group {
			return true
		}
	}
	return false
}

func (s *Sim) logsWrite(op string, in logsWriteRequest) (any, error) {
	if in.LogGroupName == "" && op != "DescribeLogGroups" {
		return nil, Errorf("InvalidParameterException", "1 validation error detected: Value null at 'logGroupName' failed to satisfy constraint: Member must not be null")
	}
	s.logs.mu.Lock()
	defer s.logs.mu.Unlock()
	if s.logs.groups == nil {
		s.logs.groups = map[string]*logGroupInfo{}
	}
	group := in.LogGroupName
	switch op {
	case "CreateLogGroup":
		if s.logGroupExistsLocked(group) {
			return nil, Errorf("ResourceAlreadyExistsException", "The specified log group already exists")
		}
		s.logs.groups[group] = &logGroupInfo{created: time.Now()}
		s.logs.planted[group] = map[string][]logLine{}
		return map[string]any{}, nil
	case "PutRetentionPolicy":
		if in.RetentionInDays == nil || !slices.Contains(logRetentionDaysAccepted, *in.RetentionInDays) {
			return nil, Errorf("InvalidParameterException", "1 validation error detected: Value at 'retentionInDays' failed to satisfy constraint: Member must satisfy enum value set: %v", logRetentionDaysAccepted)
		}
		if !s.logGroupExistsLocked(group) {
			return nil, groupNotFound()
		}
		if s.logs.groups[group] == nil {
			s.logs.groups[group] = &logGroupInfo{created: time.Now()}
		}
		s.logs.groups[group].retention = *in.RetentionInDays
		return map[string]any{}, nil
	case "CreateLogStream":
		if !s.logGroupExistsLocked(group) {
			return nil, groupNotFound()
		}
		if s.logs.planted[group] == nil {
			s.logs.planted[group] = map[string][]logLine{}
		}
		if _, ok := s.logs.planted[group][in.LogStreamName]; ok {
			return nil, Errorf("ResourceAlreadyExistsException", "The specified log stream already exists")
		}
		s.logs.planted[group][in.LogStreamName] = []logLine{}
		return map[string]any{}, nil
	case "PutLogEvents":
		if !s.logGroupExistsLocked(group) {
			return nil, groupNotFound()
		}
		lines, ok := s.logs.planted[group][in.LogStreamName]
		if !ok {
			return nil, Errorf("ResourceNotFoundException", "The specified log stream does not exist.")
		}
		if len(in.LogEvents) == 0 {
			return nil, Errorf("InvalidParameterException", "1 validation error detected: Value at 'logEvents' failed to satisfy constraint: Member must have length greater than or equal to 1")
		}
		for _, e := range in.LogEvents {
			lines = append(lines, logLine{ts: time.UnixMilli(e.Timestamp), msg: e.Message})
		}
		s.logs.planted[group][in.LogStreamName] = lines
		return map[string]any{"nextSequenceToken": "0"}, nil
	case "DescribeLogGroups":
		var out []map[string]any
		names := map[string]bool{}
		for g := range s.logs.groups {
			names[g] = true
		}
		for g := range s.logs.planted {
			names[g] = true
		}
		for _, g := range slices.Sorted(maps.Keys(names)) {
			if len(g) < len(in.LogGroupNamePrefix) || g[:len(in.LogGroupNamePrefix)] != in.LogGroupNamePrefix {
				continue
			}
			item := map[string]any{"logGroupName": g, "arn": "arn:aws:logs:" + defaultRegion + ":000000000000:log-group:" + g + ":*"}
			if info := s.logs.groups[g]; info != nil {
				item["creationTime"] = info.created.UnixMilli()
				if info.retention > 0 {
					item["retentionInDays"] = info.retention
				}
			}
			out = append(out, item)
		}
		return map[string]any{"logGroups": out}, nil
	}
	return nil, UnknownOperation(op)
}

// logRetentionDaysAccepted are the retention periods CloudWatch Logs accepts.
var logRetentionDaysAccepted = []int{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
