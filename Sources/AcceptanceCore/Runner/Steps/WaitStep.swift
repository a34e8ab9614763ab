/// `wait: 10 min`: lets time pass on the run's clock (at once in simulation), showing progress each second.
struct WaitStep: StepExecutor {
    let duration: Expression

    func execute(_ context: StepContext) async throws -> StepResult {
        let total = try context.duration(duration, try await context.values(for: [duration]))
        let start = context.clock.now()
        let slice = Duration.seconds(1)
        var elapsed = Duration.zero
        while elapsed < total {
            let next = min(elapsed + slice, total)
            try await context.clock.sleep(until: start + next)
            elapsed = next
            context.progress(elapsed: elapsed.seconds, total: total.seconds, detail: "")
        }
        return StepResult(message: "waited \(Quantity.format(total.seconds)) s")
    }
}
