//! `platform_require_jwt`: every platform call carries the platform's service JWT in its
//! `authorization: Bearer` metadata, checked by the admin API's verification (`jwt_key`,
//! `jwt_issuer`, `jwt_audience`, expiry). Only a JWT counts: the node's admin token is the
//! operator's, not the platform's.

use std::sync::Arc;

use tonic::service::Interceptor;
use tonic::{Request, Status};

use super::errors::PlatformError;
use crate::admin::auth::{Authenticator, Principal};

/// The interceptor in front of every platform service.
#[derive(Clone)]
pub(crate) struct JwtCheck {
    auth: Arc<Authenticator>,
    required: bool,
}

impl JwtCheck {
    pub(crate) fn new(auth: Arc<Authenticator>, required: bool) -> JwtCheck {
        JwtCheck { auth, required }
    }

    fn check(&self, request: &Request<()>) -> Result<(), PlatformError> {
        if !self.required {
            return Ok(());
        }
        let remote = request
            .remote_addr()
            .map(|a| a.ip())
            .ok_or_else(|| PlatformError::Unauthenticated("unknown client address".into()))?;
        let headers = request.metadata().clone().into_headers();
        match self.auth.principal(&headers, remote) {
            Ok(Principal::Jwt { .. }) => Ok(()),
            Ok(Principal::Anonymous { .. }) => Err(PlatformError::Unauthenticated(
                "this node requires the platform's service JWT: authorization: Bearer <JWT>".into(),
            )),
            Ok(Principal::AdminToken) => Err(PlatformError::Unauthenticated(
                "the admin token is not accepted here: send the platform's service JWT".into(),
            )),
            Err(e) => Err(PlatformError::Unauthenticated(e.to_string())),
        }
    }
}

impl Interceptor for JwtCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.check(&request).map_err(Status::from)?;
        Ok(request)
    }
}
