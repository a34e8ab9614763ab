import Crypto
import Foundation
import Yams

// The `parameters:` section of a procedure.
extension ProcedureParser {
    mutating func parseParameters(_ node: Node) -> [Parameter] {
        var parameters: [Parameter] = []
        for (name, keyNode, value) in reader.mapping(node, "parameters") ?? [] {
            var parameter = Parameter(
                name: name, defaultValue: Quantity(0, .second), minimum: nil, maximum: nil,
                description: "", location: reader.location(of: keyNode))
            var defaultNode: Node = value
            if case .mapping = value, let fields = reader.mapping(value, "parameter '\(name)'") {
                reader.rejectUnknownKeys(
                    fields, allowed: ["default", "min", "max", "description", "type", "pattern", "limit"],
                    in: "parameter '\(name)'")
                guard let found = fields.first(where: { $0.key == "default" })?.value else {
                    reader.error("parameter '\(name)' needs a 'default' with a unit", at: keyNode)
                    continue
                }
                defaultNode = found
                for (key, _, field) in fields {
                    switch key {
                    case "description": parameter.description = reader.scalar(field, "description") ?? ""
                    case "limit": parameter.markedLimit = reader.bool(field, "limit") ?? false
                    case "min": parameter.minimum = reader.quantity(field, "min of '\(name)'")
                    case "max": parameter.maximum = reader.quantity(field, "max of '\(name)'")
                    case "type":
                        switch reader.scalar(field, "type") {
                        case "text"?: parameter.text = ""
                        case "quantity"?: break
                        default: reader.error("a parameter's type is 'quantity' (the default) or 'text'", at: field)
                        }
                    case "pattern":
                        parameter.pattern = reader.scalar(field, "pattern")
                        if let pattern = parameter.pattern, (try? NSRegularExpression(pattern: pattern)) == nil {
                            reader.error("pattern is not a valid regular expression", at: field)
                        }
                    default: break
                    }
                }
            }
            guard let text = reader.scalar(defaultNode, "parameter '\(name)'") else { continue }
            if parameter.text != nil {
                parameter.text = text
                if let pattern = parameter.pattern, !Runner.matches(text, pattern) {
                    reader.error("default '\(text)' does not match the pattern", at: defaultNode)
                }
                parameters.append(parameter)
                continue
            }
            if parameter.pattern != nil { reader.error("'pattern' is for text parameters ('type: text')", at: keyNode) }
            do {
                parameter.defaultValue = try Quantity.parse(text)
            } catch {
                if case .notAQuantity = error, Double(text.trimmingCharacters(in: .whitespaces)) != nil {
                    reader.error(
                        "parameter '\(name)' has no unit: write its default as a quantity, "
                            + "for example '\(text) kPa' or '\(text) min'", at: defaultNode)
                } else {
                    reader.error("parameter '\(name)': \(error)", at: defaultNode)
                }
                continue
            }
            for bound in [parameter.minimum, parameter.maximum].compactMap({ $0 })
            where bound.dimension != parameter.defaultValue.dimension {
                reader.error(
                    "parameter '\(name)': bound \(bound) is not a \(parameter.defaultValue.dimension)", at: keyNode)
            }
            parameters.append(parameter)
        }
        return parameters
    }
}
