//! The subject's pages, rendered from the templates beside this file (escaped as HTML).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use dsr_jobs::model::Lang;
use minijinja::{AutoEscape, Environment, Value, context};

pub struct Pages {
    env: Environment<'static>,
}

impl Pages {
    pub fn new() -> Result<Pages, minijinja::Error> {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        for (name, text) in [
            ("base.html", include_str!("templates/base.html")),
            ("form.html", include_str!("templates/form.html")),
            ("code.html", include_str!("templates/code.html")),
            ("message.html", include_str!("templates/message.html")),
            ("download.html", include_str!("templates/download.html")),
        ] {
            env.add_template(name, text)?;
        }
        Ok(Pages { env })
    }

    /// Renders `name` with `values` and what every page has (language, controller).
    pub fn render(&self, status: StatusCode, name: &str, lang: Lang, controller: &str, values: Value) -> Response {
        let rendered = self.env.get_template(name).and_then(|t| {
            t.render(context! {
                lang => lang.as_str(),
                nb => lang == Lang::Nb,
                controller => controller,
                ..values
            })
        });
        let response = match rendered {
            Ok(html) => (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
            Err(e) => {
                tracing::error!(error = %e, page = name, "a subject page did not render");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the page could not be shown; please try again later",
                )
                    .into_response()
            }
        };
        super::guarded(response)
    }

    /// A page that says something (and perhaps offers one button or link).
    pub fn message(
        &self,
        status: StatusCode,
        lang: Lang,
        controller: &str,
        heading: &str,
        paragraphs: &[String],
        extra: Value,
    ) -> Response {
        self.render(
            status,
            "message.html",
            lang,
            controller,
            context! { heading => heading, paragraphs => paragraphs, ..extra },
        )
    }
}
