// Command go-reader decodes request bodies with Go's encoding/json into struct shapes that mirror
// Ollama's request structs (api/types.go, openai/openai.go, openai/responses.go,
// anthropic/anthropic.go), reduced to the fields the gateway reads, and prints what it decoded.
// The gateway's differential test feeds it many bodies and compares its own reading line by line.
//
// Input: one body per line, "<path> <base64 body>". Output: one JSON object per line.
// Standard library only; builds with Go 1.19 and newer.
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// Any is a Go `any` field that also keeps the value's bytes (what the gateway hashes for a
// non-string content). It fails exactly where decoding into `any` fails.
type Any struct {
	V   any
	Raw []byte
}

func (a *Any) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	a.V = v
	a.Raw = append([]byte(nil), b...)
	return nil
}

// Duration mirrors api.Duration's UnmarshalJSON.
type Duration struct{ time.Duration }

func (d *Duration) UnmarshalJSON(b []byte) (err error) {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	d.Duration = 5 * time.Minute
	switch t := v.(type) {
	case float64:
		if t < 0 {
			d.Duration = time.Duration(math.MaxInt64)
		} else {
			d.Duration = time.Duration(t * float64(time.Second))
		}
	case string:
		d.Duration, err = time.ParseDuration(t)
		if err != nil {
			return err
		}
		if d.Duration < 0 {
			d.Duration = time.Duration(math.MaxInt64)
		}
	default:
		return fmt.Errorf("Unsupported type: '%T'", v)
	}
	return nil
}

// ThinkValue mirrors api.ThinkValue's UnmarshalJSON.
type ThinkValue struct{ Value any }

func (t *ThinkValue) UnmarshalJSON(data []byte) error {
	var b bool
	if err := json.Unmarshal(data, &b); err == nil {
		t.Value = b
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		if s != "high" && s != "medium" && s != "low" && s != "max" {
			return fmt.Errorf("invalid think value: %q", s)
		}
		t.Value = s
		return nil
	}
	return errors.New("think must be a boolean or string")
}

// Message mirrors api.Message (role and content) and its UnmarshalJSON.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

func (m *Message) UnmarshalJSON(b []byte) error {
	type Alias Message
	var a Alias
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	*m = Message(a)
	m.Role = strings.ToLower(m.Role)
	return nil
}

type ChatRequest struct {
	Model     string         `json:"model"`
	Messages  []Message      `json:"messages"`
	Stream    *bool          `json:"stream,omitempty"`
	KeepAlive *Duration      `json:"keep_alive,omitempty"`
	Options   map[string]any `json:"options"`
	Think     *ThinkValue    `json:"think,omitempty"`
}

type GenerateRequest struct {
	Model     string         `json:"model"`
	Prompt    string         `json:"prompt"`
	System    string         `json:"system"`
	Stream    *bool          `json:"stream,omitempty"`
	KeepAlive *Duration      `json:"keep_alive,omitempty"`
	Options   map[string]any `json:"options"`
	Think     *ThinkValue    `json:"think,omitempty"`
}

type EmbedRequest struct {
	Model     string         `json:"model"`
	Input     Any            `json:"input"`
	KeepAlive *Duration      `json:"keep_alive,omitempty"`
	Options   map[string]any `json:"options"`
}

type EmbeddingRequest struct {
	Model     string         `json:"model"`
	Prompt    string         `json:"prompt"`
	KeepAlive *Duration      `json:"keep_alive,omitempty"`
	Options   map[string]any `json:"options"`
}

type StreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type OpenAIMessage struct {
	Role    string `json:"role"`
	Content Any    `json:"content"`
}

type ChatCompletionRequest struct {
	Model         string          `json:"model"`
	Messages      []OpenAIMessage `json:"messages"`
	Stream        bool            `json:"stream"`
	StreamOptions *StreamOptions  `json:"stream_options"`
	MaxTokens     *int            `json:"max_tokens"`
	Seed          *int            `json:"seed"`
	Stop          Any             `json:"stop"`
	Temperature   *float64        `json:"temperature"`
	TopP          *float64        `json:"top_p"`
}

type CompletionRequest struct {
	Model         string         `json:"model"`
	Prompt        string         `json:"prompt"`
	MaxTokens     *int           `json:"max_tokens"`
	Seed          *int           `json:"seed"`
	Stop          Any            `json:"stop"`
	Stream        bool           `json:"stream"`
	StreamOptions *StreamOptions `json:"stream_options"`
	Temperature   *float32       `json:"temperature"`
	TopP          float32        `json:"top_p"`
}

type OpenAIEmbedRequest struct {
	Input Any    `json:"input"`
	Model string `json:"model"`
}

// MessageParam mirrors anthropic.MessageParam's UnmarshalJSON; content blocks are kept as bytes.
type MessageParam struct {
	Role    string
	Content any // string or []byte
}

func (m *MessageParam) UnmarshalJSON(data []byte) error {
	var raw struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	m.Role = raw.Role
	var s string
	if err := json.Unmarshal(raw.Content, &s); err == nil {
		m.Content = s
		return nil
	}
	var blocks []json.RawMessage
	if err := json.Unmarshal(raw.Content, &blocks); err != nil {
		return err
	}
	m.Content = []byte(raw.Content)
	return nil
}

type MessagesRequest struct {
	Model         string         `json:"model"`
	MaxTokens     int            `json:"max_tokens"`
	Messages      []MessageParam `json:"messages"`
	System        Any            `json:"system,omitempty"`
	Stream        bool           `json:"stream,omitempty"`
	Temperature   *float64       `json:"temperature,omitempty"`
	TopP          *float64       `json:"top_p,omitempty"`
	TopK          *int           `json:"top_k,omitempty"`
	StopSequences []string       `json:"stop_sequences,omitempty"`
}

type ResponsesItem struct {
	Role    string `json:"role"`
	Content Any    `json:"content"`
}

// ResponsesInput mirrors openai.ResponsesInput's UnmarshalJSON; items keep role and content.
type ResponsesInput struct {
	Text  string
	Items []ResponsesItem
}

func (r *ResponsesInput) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		r.Text = s
		return nil
	}
	var rawItems []json.RawMessage
	if err := json.Unmarshal(data, &rawItems); err != nil {
		return err
	}
	r.Items = make([]ResponsesItem, 0, len(rawItems))
	for _, raw := range rawItems {
		var item ResponsesItem
		if err := json.Unmarshal(raw, &item); err != nil {
			return err
		}
		r.Items = append(r.Items, item)
	}
	return nil
}

type ResponsesRequest struct {
	Model           string         `json:"model"`
	Input           ResponsesInput `json:"input"`
	Instructions    string         `json:"instructions,omitempty"`
	MaxOutputTokens *int           `json:"max_output_tokens,omitempty"`
	Temperature     *float64       `json:"temperature"`
	TopP            *float64       `json:"top_p"`
	Stream          *bool          `json:"stream,omitempty"`
}

// Out is what is printed: the same view the test builds from the gateway's reading.
type Out map[string]any

func num(f float64) string { return "n:" + strconv.FormatUint(math.Float64bits(f), 16) }

func part(v any) any {
	switch t := v.(type) {
	case string:
		return "s:" + t
	case []byte:
		return "r:" + base64.StdEncoding.EncodeToString(t)
	}
	return nil
}

func anyPart(a Any) any {
	switch a.V.(type) {
	case string:
		return part(a.V)
	case map[string]any, []any:
		return part(a.Raw)
	}
	return nil
}

func value(v any) any {
	switch t := v.(type) {
	case nil:
		return nil
	case float64:
		return num(t)
	case string:
		return "s:" + t
	case bool:
		return t
	}
	return "c"
}

func stops(v any) any {
	switch t := v.(type) {
	case string:
		return []string{t}
	case []any:
		out := []string{}
		for _, s := range t {
			str, ok := s.(string)
			if !ok {
				return nil
			}
			out = append(out, str)
		}
		return out
	}
	return nil
}

func optional[T int | float64 | float32](p *T) any {
	if p == nil {
		return nil
	}
	return num(float64(*p))
}

func options(out Out, m map[string]any) {
	view := map[string]any{}
	for _, k := range []string{"num_ctx", "num_keep", "temperature", "top_p", "top_k", "num_predict", "seed", "stop"} {
		if v, ok := m[k]; ok {
			view[k] = value(v)
		}
	}
	out["options"] = view
	out["options_nil"] = m == nil
	out["temperature"] = numOpt(m, "temperature")
	out["top_p"] = numOpt(m, "top_p")
	out["top_k"] = numOpt(m, "top_k")
	out["max_tokens"] = numOpt(m, "num_predict")
	out["seed"] = numOpt(m, "seed")
	if v, ok := m["stop"]; ok {
		out["stop"] = stops(v)
	} else {
		out["stop"] = nil
	}
}

func numOpt(m map[string]any, k string) any {
	if f, ok := m[k].(float64); ok {
		return num(f)
	}
	return nil
}

func keepAlive(d *Duration) any {
	if d == nil {
		return nil
	}
	return d.Duration == 0
}

func think(t *ThinkValue) any {
	if t == nil {
		return nil
	}
	return t.Value
}

func ptrBool(b *bool) any {
	if b == nil {
		return nil
	}
	return *b
}

func usage(so *StreamOptions) any {
	if so == nil {
		return nil
	}
	return so.IncludeUsage
}

func read(path string, body []byte) (Out, error) {
	out := Out{}
	dec := func(v any) error { return json.NewDecoder(strings.NewReader(string(body))).Decode(v) }
	switch path {
	case "/api/chat":
		var r ChatRequest
		if err := dec(&r); err != nil {
			return nil, err
		}
		out["model"], out["stream"], out["keep_alive_zero"], out["think"] = r.Model, ptrBool(r.Stream), keepAlive(r.KeepAlive), think(r.Think)
		out["empty"] = len(r.Messages) == 0
		options(out, r.Options)
		out["system"], out["first_user"] = nil, nil
		for _, m := range r.Messages {
			if m.Role == "system" {
				out["system"] = part(m.Content)
				break
			}
		}
		for _, m := range r.Messages {
			if m.Role == "user" {
				out["first_user"] = part(m.Content)
				break
			}
		}
	case "/api/generate":
		var r GenerateRequest
		if err := dec(&r); err != nil {
			return nil, err
		}
		out["model"], out["stream"], out["keep_alive_zero"], out["think"] = r.Model, ptrBool(r.Stream), keepAlive(r.KeepAlive), think(r.Think)
		out["empty"] = r.Prompt == ""
		options(out, r.Options)
		out["system"], out["first_user"] = nonEmpty(r.System), nonEmpty(r.Prompt)
	case "/api/embed":
		var r EmbedRequest
		if err := dec(&r); err != nil {
			return nil, err
		}
		out["model"], out["keep_alive_zero"] = r.Model, keepAlive(r.KeepAlive)
		options(out, r.Options)
		out["system"], out["first_user"] = nil, anyPart(r.Input)
	case "/api/embeddings":
		var r EmbeddingRequest
		if err := dec(&r); err != nil {
			return nil, err
		}
		out["model"], out["keep_alive_zero"] = r.Model, keepAlive(r.KeepAlive)
		options(out, r.Options)
		out["system"], out["first_user"] = nil, nonEmpty(r.Prompt)
	case "/v1/chat/completions":
		var r ChatCompletionRequest
		if err := dec(&r); err != nil {
			return nil, err
		}
		out["model"], out["stream"], out["include_usage"] = r.Model, r.Stream, usage(r.StreamOptions)
		out["temperature"], out["top_p"], out["max_tokens"], out["seed"] = optional(r.Temperature), optional(r.TopP), optional(r.MaxTokens), optional(r.Seed)
		out["stop"] = stops(r.Stop.V)
		out["system"], out["first_user"] = nil, nil
		for _, m := range r.Messages {
			if m.Role == "system" || m.Role == "developer" {
				out["system"] = anyPart(m.Content)
				break
			}
		}
		for _, m := range r.Messages {
			if m.Role == "user" {
				out["first_user"] = anyPart(m.Content)
				break
			}
		}
	case "/v1/completions":
		var r CompletionRequest
		if err := dec(&r); err != nil {
			return nil, err
		}
		out["model"], out["stream"], out["include_usage"] = r.Model, r.Stream, usage(r.StreamOptions)
		out["temperature"], out["max_tokens"], out["seed"] = optional(r.Temperature), optional(r.MaxTokens), optional(r.Seed)
		out["top_p"] = nil
		if r.TopP != 0 {
			out["top_p"] = num(float64(r.TopP))
		}
		out["stop"] = stops(r.Stop.V)
		out["system"], out["first_user"] = nil, nonEmpty(r.Prompt)
	case "/v1/embeddings":
		var r OpenAIEmbedRequest
		if err := dec(&r); err != nil {
			return nil, err
		}
		out["model"] = r.Model
		out["system"], out["first_user"] = nil, anyPart(r.Input)
	case "/v1/messages":
		var r MessagesRequest
		if err := dec(&r); err != nil {
			return nil, err
		}
		out["model"], out["stream"] = r.Model, r.Stream
		out["temperature"], out["top_p"], out["top_k"] = optional(r.Temperature), optional(r.TopP), optional(r.TopK)
		out["max_tokens"] = nil
		if r.MaxTokens != 0 {
			out["max_tokens"] = num(float64(r.MaxTokens))
		}
		out["stop"] = nil
		if r.StopSequences != nil {
			out["stop"] = r.StopSequences
		}
		out["system"], out["first_user"] = anyPart(r.System), nil
		for _, m := range r.Messages {
			if m.Role == "user" {
				out["first_user"] = part(m.Content)
				break
			}
		}
	case "/v1/responses":
		var r ResponsesRequest
		if err := dec(&r); err != nil {
			return nil, err
		}
		out["model"], out["stream"] = r.Model, ptrBool(r.Stream)
		out["temperature"], out["top_p"], out["max_tokens"] = optional(r.Temperature), optional(r.TopP), optional(r.MaxOutputTokens)
		out["system"], out["first_user"] = nonEmpty(r.Instructions), nil
		if r.Instructions == "" {
			for _, m := range r.Input.Items {
				if m.Role == "system" || m.Role == "developer" {
					out["system"] = anyPart(m.Content)
					break
				}
			}
		}
		for _, m := range r.Input.Items {
			if m.Role == "user" {
				out["first_user"] = anyPart(m.Content)
				break
			}
		}
		if out["first_user"] == nil && r.Input.Text != "" {
			out["first_user"] = part(r.Input.Text)
		}
	default:
		return nil, fmt.Errorf("unknown path %q", path)
	}
	return out, nil
}

func nonEmpty(s string) any {
	if s == "" {
		return nil
	}
	return part(s)
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	enc := json.NewEncoder(w)
	for in.Scan() {
		path, b64, _ := strings.Cut(in.Text(), " ")
		body, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bad input line:", err)
			os.Exit(2)
		}
		out, err := read(path, body)
		if err != nil {
			out = Out{"ok": false}
		} else {
			out["ok"] = true
		}
		if err := enc.Encode(out); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}
