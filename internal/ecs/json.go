package ecs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"
)

// MarshalJSON writes the plan with the SDK inputs as the SDK sends them: a field left unset
// (nil, or the zero value of a plain field, which the SDK does not serialise) is left out,
// so the plan shows what is set and nothing else.
func (p Plan) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	if err := encode(&b, reflect.ValueOf(p), false); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// CanonicalJSON encodes v as MarshalJSON encodes a plan: SDK structs without their
// unset fields. A hash of it stays the same when the SDK adds a field nobody sets.
func CanonicalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := encode(&b, reflect.ValueOf(v), false); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

const sdkPrefix = "github.com/aws/aws-sdk-go-v2/"

var (
	ownPkg        = reflect.TypeFor[Plan]().PkgPath()
	marshalerType = reflect.TypeFor[json.Marshaler]()
)

// encode writes v as JSON. Structs of this package follow their json tags; structs of the
// SDK (sdk true below them) drop unset fields and use the Go field names.
func encode(b *bytes.Buffer, v reflect.Value, sdk bool) error {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			b.WriteString("null")
			return nil
		}
		return encode(b, v.Elem(), sdk)
	case reflect.Struct:
		t := v.Type()
		own, sdkType := t.PkgPath() == ownPkg, strings.HasPrefix(t.PkgPath(), sdkPrefix)
		if !own && (!sdkType || t.Implements(marshalerType)) {
			return leaf(b, v)
		}
		sdk = sdkType
		b.WriteByte('{')
		n := 0
		for i := range t.NumField() {
			f, fv := t.Field(i), v.Field(i)
			if !f.IsExported() {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			switch {
			case name == "-":
				continue
			case sdk && fv.IsZero():
				continue
			case !sdk && slices.Contains(strings.Split(opts, ","), "omitempty") && empty(fv):
				continue
			case name == "":
				name = f.Name
			}
			if n > 0 {
				b.WriteByte(',')
			}
			n++
			fmt.Fprintf(b, "%q:", name)
			if err := encode(b, fv, sdk); err != nil {
				return err
			}
		}
		b.WriteByte('}')
		return nil
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			b.WriteString("null")
			return nil
		}
		b.WriteByte('[')
		for i := range v.Len() {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := encode(b, v.Index(i), sdk); err != nil {
				return err
			}
		}
		b.WriteByte(']')
		return nil
	case reflect.Map:
		if v.IsNil() {
			b.WriteString("null")
			return nil
		}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(b, "%q:", k.String())
			if err := encode(b, v.MapIndex(k), sdk); err != nil {
				return err
			}
		}
		b.WriteByte('}')
		return nil
	}
	return leaf(b, v)
}

func leaf(b *bytes.Buffer, v reflect.Value) error {
	out, err := json.Marshal(v.Interface())
	if err != nil {
		return err
	}
	b.Write(out)
	return nil
}

// empty is encoding/json's omitempty test.
func empty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Slice, reflect.Map, reflect.String, reflect.Array:
		return v.Len() == 0
	case reflect.Pointer, reflect.Interface:
		return v.IsNil()
	}
	return v.IsZero()
}

// shortDuration writes 24h rather than 24h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
