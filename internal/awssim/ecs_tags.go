package awssim

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// ECS TagResource and ListTagsForResource, for services: the only resources vmctl
// tags after creating them (UpdateService carries no tags). Other resource types
// are refused by name rather than accepted and forgotten.

type tagResourceInput struct {
	ResourceArn string   `json:"resourceArn"`
	Tags        []ecsTag `json:"tags"`
}

// taggedService finds the service an ARN names (arn:…:service/cluster/name); the
// caller holds the lock.
func (f *compute) taggedService(arn string) (*ecsService, error) {
	_, res, ok := strings.Cut(arn, ":service/")
	if !strings.HasPrefix(arn, "arn:aws:ecs:") || !ok {
		return nil, ecsInvalid("The ARN %q is not a service ARN: the simulator tags ECS services only.", arn)
	}
	cluster, name, ok := strings.Cut(res, "/")
	if !ok {
		return nil, ecsInvalid("The ARN %q is not a service ARN in the long format (service/cluster/name).", arn)
	}
	c, err := f.findCluster(cluster)
	if err != nil {
		return nil, err
	}
	svc, err := c.findService(name)
	if err != nil {
		return nil, Errorf("ResourceNotFoundException", "The specified resource is not found.")
	}
	return svc, nil
}

func (s *Sim) tagResource(_ arnHome, body []byte) (any, error) {
	var in tagResourceInput
	if err := strictDecode(body, &in); err != nil {
		return nil, err
	}
	if len(in.Tags) == 0 {
		return nil, ecsInvalid("Tags must not be empty.")
	}
	for _, t := range in.Tags {
		// AWS's limits: keys 1–128 and values 0–256 characters (not bytes).
		if n := utf8.RuneCountInString(t.Key); n == 0 || n > 128 {
			return nil, ecsInvalid("Tag key %q must be 1 to 128 characters.", t.Key)
		}
		if utf8.RuneCountInString(t.Value) > 256 {
			return nil, ecsInvalid("Tag value of %q must be at most 256 characters.", t.Key)
		}
	}
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	svc, err := f.taggedService(in.ResourceArn)
	if err != nil {
		return nil, err
	}
	for _, t := range in.Tags {
		replaced := false
		for i := range svc.tags {
			if svc.tags[i].Key == t.Key {
				svc.tags[i].Value, replaced = t.Value, true
			}
		}
		if !replaced {
			svc.tags = append(svc.tags, t)
		}
	}
	if len(svc.tags) > 50 {
		return nil, ecsInvalid("A resource can have at most 50 tags.")
	}
	return map[string]any{}, nil
}

func (s *Sim) listTagsForResource(_ arnHome, body []byte) (any, error) {
	var in struct {
		ResourceArn string `json:"resourceArn"`
	}
	if err := strictDecode(body, &in); err != nil {
		return nil, err
	}
	f := s.compute
	f.mu.Lock()
	defer f.mu.Unlock()
	svc, err := f.taggedService(in.ResourceArn)
	if err != nil {
		return nil, err
	}
	tags := append([]ecsTag{}, svc.tags...)
	return map[string]any{"tags": tags}, nil
}

// strictDecode decodes a request body and refuses fields the simulator does not
// model, naming the field, as AWS refuses what it does not know.
func strictDecode(body []byte, v any) error {
	if len(body) == 0 {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if strings.HasPrefix(err.Error(), "json: unknown field ") {
			return Errorf("InvalidParameterException", "awssim does not model the request field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return Errorf("SerializationException", "%v", err)
	}
	return nil
}
