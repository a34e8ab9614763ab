import Yams

/// Parsing of `retry:`, the flow control a step may carry.
extension ProcedureParser {
    /// `retry: 3` (attempts in all), or `retry: {attempts: 3, on: fail | error | [fail, error], delay: 10 s}`.
    mutating func parseRetry(_ node: Node, kind: String) -> Step.Retry? {
        if kind == "prompt" {
            reader.error("a prompt is not retried: the operator answers it", at: node)
            return nil
        }
        func attempts(_ node: Node) -> Int? {
            guard let count = reader.integer(node, "retry attempts") else { return nil }
            guard (2...10).contains(count) else {
                reader.error("retry is the number of attempts in all, the first included: 2 to 10", at: node)
                return nil
            }
            return count
        }
        if case .scalar = node {
            return attempts(node).map { Step.Retry(attempts: $0) }
        }
        guard let fields = reader.mapping(node, "retry") else { return nil }
        reader.rejectUnknownKeys(fields, allowed: ["attempts", "on", "delay"], in: "retry")
        guard let countNode = fields.first(where: { $0.key == "attempts" })?.value else {
            reader.error("retry needs 'attempts' (in all, the first included)", at: node)
            return nil
        }
        guard let count = attempts(countNode) else { return nil }
        var retry = Step.Retry(attempts: count)
        if let onNode = fields.first(where: { $0.key == "on" })?.value {
            let items: [Node]
            if case .sequence = onNode { items = reader.sequence(onNode, "on") ?? [] } else { items = [onNode] }
            var verdicts: Set<Verdict> = []
            for item in items {
                switch reader.scalar(item, "on")?.lowercased() {
                case "fail"?: verdicts.insert(.fail)
                case "error"?: verdicts.insert(.error)
                case nil: break
                case let other?:
                    reader.error(
                        "retry on '\(other)': a step is retried on fail (a limit not met) or error (a device that "
                            + "did not answer); never on an abort", at: item)
                }
            }
            if !verdicts.isEmpty { retry.on = verdicts }
        }
        if let delayNode = fields.first(where: { $0.key == "delay" })?.value {
            retry.delay = expression(delayNode, "delay")
        }
        return retry
    }
}
