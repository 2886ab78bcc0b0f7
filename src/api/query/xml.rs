//! The action layer's answers as EC2's XML (EC2-QUERY.md §4): `<ActionResponse>` with
//! `requestId` first, members in lowerCamel, lists as `<xxxSet><item>…</item></xxxSet>`;
//! errors as `<Response><Errors><Error>…</Error></Errors><RequestID>…</RequestID></Response>`.

use super::super::errors::Answer;
use super::super::types::*;

pub const NAMESPACE: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

/// Text with `& < > " '` escaped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn el(out: &mut String, name: &str, text: &str) {
    out.push_str(&format!("<{name}>{}</{name}>", escape(text)));
}

/// The error document.
pub fn error(code: &str, message: &str, request_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{}</Code><Message>{}</Message></Error></Errors><RequestID>{}</RequestID></Response>\n",
        escape(code),
        escape(message),
        escape(request_id)
    )
}

fn family(out: &mut String, r: &DefaultCreditSpecificationResponse) {
    let f = &r.instance_family_credit_specification;
    out.push_str("<instanceFamilyCreditSpecification>");
    el(out, "instanceFamily", &f.instance_family);
    el(out, "cpuCredits", &f.cpu_credits);
    out.push_str("</instanceFamilyCreditSpecification>");
}

/// An action layer's answer as (HTTP status, XML).
pub fn encode(action: Action, answer: &Answer, request_id: &str) -> (u16, String) {
    if answer.status != 200 {
        let code = answer.code().unwrap_or("InternalError");
        let message = answer.body["Error"]["Message"].as_str().unwrap_or("");
        return (answer.status, error(code, message, request_id));
    }
    let mut out = String::new();
    let bad = |e: serde_json::Error| {
        (
            500,
            error(
                "InternalError",
                &format!("cannot encode the answer: {e}"),
                request_id,
            ),
        )
    };
    match action {
        Action::ModifyInstanceCreditSpecification => {
            let r: ModifyInstanceCreditSpecificationResponse =
                match serde_json::from_value(answer.body.clone()) {
                    Ok(r) => r,
                    Err(e) => return bad(e),
                };
            out.push_str("<successfulInstanceCreditSpecificationSet>");
            for s in &r.successful_instance_credit_specifications {
                out.push_str("<item>");
                el(&mut out, "instanceId", &s.instance_id);
                out.push_str("</item>");
            }
            out.push_str("</successfulInstanceCreditSpecificationSet>");
            out.push_str("<unsuccessfulInstanceCreditSpecificationSet>");
            for u in &r.unsuccessful_instance_credit_specifications {
                out.push_str("<item>");
                el(&mut out, "instanceId", &u.instance_id);
                out.push_str("<error>");
                el(&mut out, "code", &u.error.code);
                el(&mut out, "message", &u.error.message);
                out.push_str("</error></item>");
            }
            out.push_str("</unsuccessfulInstanceCreditSpecificationSet>");
        }
        Action::DescribeInstanceCreditSpecifications => {
            let r: DescribeInstanceCreditSpecificationsResponse =
                match serde_json::from_value(answer.body.clone()) {
                    Ok(r) => r,
                    Err(e) => return bad(e),
                };
            out.push_str("<instanceCreditSpecificationSet>");
            for s in &r.instance_credit_specifications {
                out.push_str("<item>");
                el(&mut out, "instanceId", &s.instance_id);
                el(&mut out, "cpuCredits", &s.cpu_credits);
                out.push_str("</item>");
            }
            out.push_str("</instanceCreditSpecificationSet>");
            if let Some(t) = &r.next_token {
                el(&mut out, "nextToken", t);
            }
        }
        Action::ModifyDefaultCreditSpecification | Action::GetDefaultCreditSpecification => {
            let r: DefaultCreditSpecificationResponse =
                match serde_json::from_value(answer.body.clone()) {
                    Ok(r) => r,
                    Err(e) => return bad(e),
                };
            family(&mut out, &r);
        }
        Action::DescribeCreditBalances => {
            return (
                400,
                error(
                    code::ACTION,
                    "DescribeCreditBalances is served by the JSON API only",
                    request_id,
                ),
            )
        }
    }
    let name = action.name();
    (
        200,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{name}Response xmlns=\"{NAMESPACE}\"><requestId>{}</requestId>{out}</{name}Response>\n",
            escape(request_id)
        ),
    )
}
