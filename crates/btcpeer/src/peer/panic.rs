//! Containing a panic in the application's code: [`CatchPanic`] turns a panic while polling a
//! future into an error, and [`panic_message`] gives its text.

/// The text of a panic's payload (what `panic!` was given), or a placeholder.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// Polls a pinned future, turning a panic in it into an error (the future is not polled again).
pub(crate) struct CatchPanic<'a, F>(pub(crate) std::pin::Pin<&'a mut F>);

impl<F: std::future::Future> std::future::Future for CatchPanic<'_, F> {
    type Output = Result<F::Output, Box<dyn std::any::Any + Send>>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        let fut = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(panic) => std::task::Poll::Ready(Err(panic)),
        }
    }
}
