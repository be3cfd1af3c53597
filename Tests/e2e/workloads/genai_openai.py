"""A GenAI application instrumented by MLflow's OpenAI autolog, run against the suite's fake OpenAI server
(FAKE_OPENAI_URL): an agent (AGENT span) that retrieves documents (RETRIEVER), calls chat completions with a
tool, runs the tool (TOOL) and calls the model again with the tool's result; then one responses-API call and
one embeddings call, each its own trace. Prints the trace ids it produced."""

import json
import os

import mlflow
from mlflow.entities import Document
from openai import OpenAI

mlflow.set_experiment(os.environ.get("WORKLOAD_EXPERIMENT", "genai"))
mlflow.openai.autolog()
client = OpenAI(base_url=os.environ["FAKE_OPENAI_URL"], api_key="sk-test-not-a-real-key", max_retries=0)
QUESTION = os.environ.get("WORKLOAD_QUESTION", "What is the weather in Paris?")
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


@mlflow.trace(span_type="TOOL")
def get_weather(city):
    return {"city": city, "forecast": "sunny"}


@mlflow.trace(span_type="RETRIEVER")
def retrieve(query):
    return [Document(page_content="Paris has a mild climate.", metadata={"doc_uri": "docs/paris.md"}, id="doc-1")]


@mlflow.trace(name="weather_agent", span_type="AGENT")
def agent(question):
    mlflow.update_current_trace(metadata={"mlflow.trace.session": "conv-42", "mlflow.trace.user": "alice"})
    retrieve(question)
    messages = [{"role": "system", "content": "You are a weather assistant. Escalations: ops@example.com"},
                {"role": "user", "content": question}]
    first = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS, temperature=0.2, max_tokens=100)
    call = first.choices[0].message.tool_calls[0]
    result = get_weather(**json.loads(call.function.arguments))
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
    final = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=TOOLS)
    return final.choices[0].message.content


agent(QUESTION)
trace_ids = [mlflow.get_last_active_trace_id()]
client.responses.create(model="gpt-4o-mini", instructions="Be brief.", input="Say hi")
trace_ids.append(mlflow.get_last_active_trace_id())
client.embeddings.create(model="text-embedding-3-small", input=["hello world"])
trace_ids.append(mlflow.get_last_active_trace_id())
print("WORKLOAD_RESULT " + json.dumps({"trace_ids": trace_ids}))
