//! Inbound OpenAI chat completions, typed: a borrowed view of the request that checks every
//! field the gateway or a translating provider reads, and its conversion into the IR.
//!
//! The pass-through path only validates with this view (strings borrowed from the parsed body,
//! tool schemas skipped with `S = IgnoredAny`) and forwards the client's own body; unknown fields
//! are not part of the view and so reach an OpenAI upstream untouched.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use super::ir::{
    ChatRequest, ImageSource, Message, Part, Reasoning, Role, Sampling, Tool, ToolChoice,
};
use super::typed::{self, Count};
use super::WireError;

/// `POST /v1/chat/completions` body. `S` is how tool schemas are read: `Value` to keep them,
/// `IgnoredAny` to only check the rest.
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de>, 'de: 'a"))]
pub struct ChatCompletionRequest<'a, S = Value> {
    /// Borrowed from the body when it has no escapes: the pass-through finds it there.
    #[serde(borrow, default, deserialize_with = "typed::borrowed_str")]
    pub model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub messages: Vec<ChatMessage<'a>>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub max_tokens: Option<Count>,
    #[serde(default)]
    pub max_completion_tokens: Option<Count>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub top_k: Option<f64>,
    #[serde(default)]
    pub min_p: Option<f64>,
    #[serde(default)]
    pub seed: Option<f64>,
    #[serde(default)]
    pub frequency_penalty: Option<f64>,
    #[serde(default)]
    pub presence_penalty: Option<f64>,
    #[serde(default)]
    pub repeat_penalty: Option<f64>,
    #[serde(borrow, default)]
    pub stop: Option<Stop<'a>>,
    #[serde(default = "Option::default")]
    pub tools: Option<Vec<ChatTool<'a, S>>>,
    #[serde(borrow, default)]
    pub tool_choice: Option<ChatToolChoice<'a>>,
    #[serde(borrow, default)]
    pub reasoning_effort: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize, Default)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "a string or an array of strings")]
pub enum Stop<'a> {
    One(#[serde(borrow)] Cow<'a, str>),
    Many(#[serde(borrow)] Vec<Cow<'a, str>>),
}

#[derive(Debug, Deserialize)]
pub struct ChatMessage<'a> {
    #[serde(borrow)]
    pub role: Cow<'a, str>,
    #[serde(borrow, default)]
    pub content: Option<ChatContent<'a>>,
    #[serde(borrow, default)]
    pub tool_calls: Option<Vec<ChatToolCall<'a>>>,
    #[serde(borrow, default)]
    pub tool_call_id: Option<Cow<'a, str>>,
    /// Thinking text under Ollama's name …
    #[serde(borrow, default)]
    pub reasoning: Option<Cow<'a, str>>,
    /// … and under DeepSeek's / vLLM's (a client may send both).
    #[serde(borrow, default)]
    pub reasoning_content: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "a string, null, or an array of content parts ({\"type\":\"text\",…} or {\"type\":\"image_url\",…})"
)]
pub enum ChatContent<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    Parts(#[serde(borrow)] Vec<ChatPart<'a>>),
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
pub enum ChatPart<'a> {
    #[serde(rename = "text", alias = "input_text")]
    Text {
        #[serde(borrow)]
        text: Cow<'a, str>,
    },
    #[serde(rename = "image_url")]
    ImageUrl {
        #[serde(borrow)]
        image_url: ImageUrl<'a>,
    },
    #[serde(rename = "refusal")]
    Refusal {
        #[serde(borrow)]
        refusal: Cow<'a, str>,
    },
    /// Audio, files and what comes next: forwarded to OpenAI upstreams, refused by translators.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "a URL string or an object with `url`")]
pub enum ImageUrl<'a> {
    Bare(#[serde(borrow)] Cow<'a, str>),
    Object {
        #[serde(borrow)]
        url: Cow<'a, str>,
    },
}

#[derive(Debug, Deserialize)]
pub struct ChatToolCall<'a> {
    #[serde(borrow, default)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub function: ChatFunctionCall<'a>,
}

#[derive(Debug, Deserialize)]
pub struct ChatFunctionCall<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(borrow, default)]
    pub arguments: Option<Arguments<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged, expecting = "a JSON text (string) of the arguments object")]
pub enum Arguments<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    Object(serde_json::Map<String, Value>),
}

#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de>, 'de: 'a"))]
pub struct ChatTool<'a, S = Value> {
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Cow<'a, str>>,
    #[serde(default = "Option::default")]
    pub function: Option<ChatFunctionDef<'a, S>>,
}

#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de>, 'de: 'a"))]
pub struct ChatFunctionDef<'a, S = Value> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    #[serde(borrow, default)]
    pub description: Option<Cow<'a, str>>,
    #[serde(default = "Option::default")]
    pub parameters: Option<S>,
}

#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "\"auto\", \"none\", \"required\" or {\"type\":\"function\",\"function\":{\"name\":…}}"
)]
pub enum ChatToolChoice<'a> {
    Mode(#[serde(borrow)] Cow<'a, str>),
    Named {
        #[serde(borrow)]
        function: NamedFunction<'a>,
    },
    /// `allowed_tools`, `custom` and later forms: forwarded to OpenAI upstreams, `auto` for
    /// translators.
    Other(serde_json::Map<String, Value>),
}

#[derive(Debug, Deserialize)]
pub struct NamedFunction<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
}

/// Checks a parsed chat completions body (every typed field, non-empty `messages`) without
/// copying it. The pass-through forwards the body itself afterwards.
pub fn validate(req: &Value) -> Result<(), WireError> {
    if !req.is_object() {
        return Err(WireError::bad_request(
            format!(
                "The request body must be a JSON object, not {}.",
                super::openai::json_kind(req)
            ),
            None,
        ));
    }
    let view: ChatCompletionRequest<'_, IgnoredAny> = typed::from_value(req)?;
    check_not_empty(&view)
}

pub(super) fn check_not_empty<S>(view: &ChatCompletionRequest<'_, S>) -> Result<(), WireError> {
    if view.messages.is_empty() {
        return Err(WireError::bad_request(
            "[] is too short - 'messages'. Send at least one message.",
            Some("messages".into()),
        ));
    }
    Ok(())
}

impl<'a> ChatCompletionRequest<'a, Value> {
    /// Reads and checks a parsed body.
    pub fn parse(req: &'a Value) -> Result<Self, WireError> {
        validate(req)?;
        let view: ChatCompletionRequest<'a, Value> = typed::from_value(req)?;
        Ok(view)
    }

    /// The request in the IR: `system`/`developer` messages become `system`, `tool` messages
    /// become tool results in a user turn. Fails (400) on content a translator cannot carry.
    pub fn to_ir(&self) -> Result<ChatRequest, WireError> {
        let mut out = ChatRequest {
            model: self
                .model
                .as_deref()
                .filter(|m| !m.is_empty())
                .map(str::to_owned),
            stream: self.stream.unwrap_or(false),
            sampling: Sampling {
                max_tokens: self.max_completion_tokens.or(self.max_tokens).map(|c| c.0),
                temperature: self.temperature,
                top_p: self.top_p,
                stop: match &self.stop {
                    None => Vec::new(),
                    Some(Stop::One(s)) => vec![s.to_string()],
                    Some(Stop::Many(v)) => v.iter().map(|s| s.to_string()).collect(),
                },
            },
            reasoning: self.reasoning_effort.as_ref().map(|e| Reasoning {
                effort: Some(e.to_string()),
                budget_tokens: None,
            }),
            ..ChatRequest::default()
        };
        for (i, m) in self.messages.iter().enumerate() {
            let param = format!("messages[{i}]");
            match m.role.as_ref() {
                "system" | "developer" => {
                    let text = text_of(m.content.as_ref(), &format!("{param}.content"))?;
                    out.system.push(text);
                }
                "user" => {
                    let parts = parts_of(m.content.as_ref(), &format!("{param}.content"))?;
                    push_turn(&mut out.messages, Role::User, parts);
                }
                "assistant" => {
                    let mut parts = Vec::new();
                    let reasoning = m.reasoning.as_deref().or(m.reasoning_content.as_deref());
                    if let Some(r) = reasoning.filter(|r| !r.is_empty()) {
                        parts.push(Part::Reasoning {
                            text: r.to_owned(),
                            signature: None,
                        });
                    }
                    parts.extend(parts_of(m.content.as_ref(), &format!("{param}.content"))?);
                    for (j, call) in m.tool_calls.iter().flatten().enumerate() {
                        let arguments = match &call.function.arguments {
                            None => "{}".to_owned(),
                            Some(Arguments::Text(t)) if t.trim().is_empty() => "{}".to_owned(),
                            Some(Arguments::Text(t)) => t.to_string(),
                            Some(Arguments::Object(o)) => Value::Object(o.clone()).to_string(),
                        };
                        parts.push(Part::ToolCall {
                            id: call
                                .id
                                .as_deref()
                                .map(str::to_owned)
                                .unwrap_or_else(|| format!("call_{i}_{j}")),
                            name: call.function.name.to_string(),
                            arguments,
                            thought_signature: None,
                        });
                    }
                    push_turn(&mut out.messages, Role::Assistant, parts);
                }
                "tool" | "function" => {
                    let content = text_of(m.content.as_ref(), &format!("{param}.content"))?;
                    let call_id = m.tool_call_id.as_deref().ok_or_else(|| {
                        WireError::bad_request(
                            format!("Missing required parameter: '{param}.tool_call_id'."),
                            Some(format!("{param}.tool_call_id")),
                        )
                    })?;
                    push_turn(
                        &mut out.messages,
                        Role::User,
                        vec![Part::ToolResult {
                            call_id: call_id.to_owned(),
                            content,
                            is_error: false,
                        }],
                    );
                }
                other => {
                    return Err(WireError::bad_request(
                        format!("Invalid value for '{param}.role': '{other}' is not one of system, developer, user, assistant, tool."),
                        Some(format!("{param}.role")),
                    ))
                }
            }
        }
        for (i, tool) in self.tools.iter().flatten().enumerate() {
            let Some(f) = &tool.function else {
                return Err(WireError::bad_request(
                    format!("Missing required parameter: 'tools[{i}].function'."),
                    Some(format!("tools[{i}].function")),
                ));
            };
            out.tools.push(Tool {
                name: f.name.to_string(),
                description: f.description.as_deref().map(str::to_owned),
                parameters: f
                    .parameters
                    .clone()
                    .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
            });
        }
        out.tool_choice = match &self.tool_choice {
            None => None,
            Some(ChatToolChoice::Mode(m)) => Some(match m.as_ref() {
                "none" => ToolChoice::None,
                "required" => ToolChoice::Required,
                _ => ToolChoice::Auto,
            }),
            Some(ChatToolChoice::Named { function }) => {
                Some(ToolChoice::Function(function.name.to_string()))
            }
            Some(ChatToolChoice::Other(_)) => Some(ToolChoice::Auto),
        };
        Ok(out)
    }
}

/// Appends `parts` as a turn, merging into the previous turn of the same role (tool results
/// following each other, or following a user turn, share one user turn).
fn push_turn(messages: &mut Vec<Message>, role: Role, parts: Vec<Part>) {
    if parts.is_empty() {
        return;
    }
    match messages.last_mut() {
        Some(last) if last.role == role => last.parts.extend(parts),
        _ => messages.push(Message { role, parts }),
    }
}

fn parts_of(content: Option<&ChatContent<'_>>, param: &str) -> Result<Vec<Part>, WireError> {
    match content {
        None => Ok(Vec::new()),
        Some(ChatContent::Text(t)) if t.is_empty() => Ok(Vec::new()),
        Some(ChatContent::Text(t)) => Ok(vec![Part::Text {
            text: t.to_string(),
        }]),
        Some(ChatContent::Parts(parts)) => parts
            .iter()
            .enumerate()
            .map(|(i, p)| match p {
                ChatPart::Text { text } => Ok(Part::Text {
                    text: text.to_string(),
                }),
                ChatPart::Refusal { refusal } => Ok(Part::Text {
                    text: refusal.to_string(),
                }),
                ChatPart::ImageUrl { image_url } => {
                    let url = match image_url {
                        ImageUrl::Bare(u) | ImageUrl::Object { url: u } => u,
                    };
                    Ok(Part::Image {
                        source: ImageSource::from_url(url),
                    })
                }
                ChatPart::Other => Err(WireError::bad_request(
                    format!("The content part '{param}[{i}]' cannot be forwarded to this model; send text or image_url parts."),
                    Some(format!("{param}[{i}].type")),
                )),
            })
            .collect(),
    }
}

fn text_of(content: Option<&ChatContent<'_>>, param: &str) -> Result<String, WireError> {
    let mut text = String::new();
    for part in parts_of(content, param)? {
        if let Part::Text { text: t } = part {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&t);
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn param_of(req: Value) -> Option<String> {
        match validate(&req).unwrap_err() {
            WireError::BadRequest { param, .. } => param,
        }
    }

    #[test]
    fn each_mistyped_field_is_a_400_naming_it() {
        let base = || json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        let cases: Vec<(&str, Value)> = vec![
            ("stream", json!("yes")),
            ("max_tokens", json!("ten")),
            ("max_completion_tokens", json!(-1)),
            ("temperature", json!("0.5")),
            ("top_p", json!([])),
            ("stop", json!(5)),
            ("model", json!(1)),
            ("tools", json!({})),
            ("tool_choice", json!(7)),
            ("stream_options", json!("on")),
        ];
        for (field, value) in cases {
            let mut req = base();
            req[field] = value;
            assert_eq!(
                param_of(req).as_deref(),
                Some(field),
                "{field} with a wrong type"
            );
        }
        let mut req = base();
        req["messages"][0]["content"] = json!(5);
        assert_eq!(param_of(req).as_deref(), Some("messages[0].content"));
        let mut req = base();
        req["messages"][0]["role"] = json!(5);
        assert_eq!(param_of(req).as_deref(), Some("messages[0].role"));
        assert_eq!(
            param_of(json!({"messages": []})).as_deref(),
            Some("messages")
        );
        assert_eq!(param_of(json!({"model": "m"})).as_deref(), Some("messages"));
        assert!(validate(&base()).is_ok());
    }

    #[test]
    fn unknown_parts_and_fields_pass_validation_for_the_pass_through() {
        let req = json!({"messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "…", "format": "wav"}}]},
            {"role": "assistant", "content": "x", "reasoning": "a", "reasoning_content": "a"}],
            "tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": []}},
            "logit_bias": {"50256": -100}, "max_tokens": 64.0, "seed": 7});
        assert!(validate(&req).is_ok());
        let view = ChatCompletionRequest::parse(&req).unwrap();
        assert!(view.to_ir().is_err(), "a translator cannot carry audio");
    }

    #[test]
    fn a_tool_conversation_becomes_the_ir() {
        let req = json!({"model": "ollama/m", "stream": true, "max_tokens": 50,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "done"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
            "tool_choice": "required"});
        let ir = ChatCompletionRequest::parse(&req).unwrap().to_ir().unwrap();
        assert_eq!(ir.system, vec!["Be brief.".to_string()]);
        assert!(ir.stream);
        assert_eq!(ir.sampling.max_tokens, Some(50));
        assert_eq!(ir.tool_choice, Some(ToolChoice::Required));
        assert_eq!(ir.messages.len(), 3);
        assert_eq!(
            ir.messages[0].parts[1],
            Part::Image {
                source: ImageSource::Base64 {
                    media_type: "image/png".into(),
                    data: "iVBO".into()
                }
            }
        );
        assert_eq!(
            ir.messages[2].parts,
            vec![Part::ToolResult {
                call_id: "call_1".into(),
                content: "done".into(),
                is_error: false
            }]
        );
        // And back: the same conversation in OpenAI's shape.
        let back = ir.to_openai();
        assert_eq!(
            back["messages"][3],
            json!({"role": "tool", "tool_call_id": "call_1", "content": "done"})
        );
    }
}
